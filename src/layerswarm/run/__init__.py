"""A whole run: search, baselines, the answer, presets, the run folder, compare."""
