"""qframe: a config-driven, plugin-extensible framework for quantitative research."""

__version__ = "0.1.0"
