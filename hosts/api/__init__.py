"""The hosts app's REST API."""
