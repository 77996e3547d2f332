"""Pages of replication."""
