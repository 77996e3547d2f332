"""Filters shared by the scanning list pages and API list endpoints."""
