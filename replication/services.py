"""Every change of state in replication, with its audit event (the only writers of its models)."""
