"""Every change of state in scanning, with its audit event (the only writers of its models)."""
