"""Regenerate the committed rules/<area>.yml from a stack's config (``make rules``)."""
