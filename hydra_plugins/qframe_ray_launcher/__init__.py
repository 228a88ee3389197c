"""qframe's Ray launcher for Hydra (``hydra/launcher=qframe_ray``)."""
