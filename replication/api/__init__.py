"""The replication app's REST API."""
