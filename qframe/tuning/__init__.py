"""Hyperparameter sweeps: qframe's hyperopt sweeper for Hydra (``hydra/sweeper=hyperopt``, ``tuner=...``)."""
