"""Forms of the replication pages."""
