"""Experiment management on MLflow's own store and client: list, show, compare, rank, delete and re-run past
runs (``qframe runs``), and the Python API (:func:`qframe.runs`, :func:`qframe.record`).

Nothing here keeps a database of its own: every question is a search of the MLflow store a run records to.
"""
