"""qframe's fork launcher for Hydra (``hydra/launcher=qframe``)."""
