"""REST API of replication."""
