"""The projects app's REST API."""
