"""Pages of scanning."""
