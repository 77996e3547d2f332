"""The core's REST API."""
