"""API serializers of replication."""
