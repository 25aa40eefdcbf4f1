"""The closed loop: alerts, response rules, retraining triggers and their feedback."""
