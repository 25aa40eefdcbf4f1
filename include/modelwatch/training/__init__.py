"""Training, validation gates and retraining bookkeeping."""
