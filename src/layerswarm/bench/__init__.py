"""The standard benchmark: plain reference vs layerswarm exact vs approximate (``layerswarm bench``)."""

from .run import PRESETS, BenchPreset, format_table, run_bench

__all__ = ["PRESETS", "BenchPreset", "format_table", "run_bench"]
