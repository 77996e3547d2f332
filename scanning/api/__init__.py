"""The scanning app's REST API."""
