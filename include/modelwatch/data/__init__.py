"""Market data, features, signals, data-quality checks and the monitoring database access."""
