"""The administration core: identity, audit, jobs, credentials, certificates and the trust flow."""
