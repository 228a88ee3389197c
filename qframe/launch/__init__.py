"""Process isolation for sweep jobs: qframe's fork launcher (``hydra/launcher=qframe``)."""
