"""The registries app's REST API."""
