"""qframe's hyperopt sweeper for Hydra (``hydra/sweeper=hyperopt``)."""
