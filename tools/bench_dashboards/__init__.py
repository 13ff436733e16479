"""Query latency of every dashboard over 24h of synthetic data, with and without recording rules."""
