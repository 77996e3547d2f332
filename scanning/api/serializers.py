"""API serializers of scanning."""
