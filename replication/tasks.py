"""Job runners of replication, registered with portal.core.jobs.register()."""
