"""Figures for experiment reports, drawn with matplotlib (Agg backend, no display needed)."""
