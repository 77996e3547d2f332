"""REST API of scanning."""
