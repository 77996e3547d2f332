"""Data of replication (none yet: the app is registered with its rooms so the layout holds from the start)."""
