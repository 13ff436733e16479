"""Helpers shared by tests (metric-name inventory, ...)."""
