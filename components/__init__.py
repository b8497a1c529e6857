"""Reusable widgets and pure figure builders (data in, plotly figure / HTML out)."""
