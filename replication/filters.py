"""Filters shared by the replication list pages and API list endpoints."""
