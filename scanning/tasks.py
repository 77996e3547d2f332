"""Job runners of scanning, registered with portal.core.jobs.register()."""
