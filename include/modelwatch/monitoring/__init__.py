"""What ModelWatch observes: drift and live performance of model versions."""
