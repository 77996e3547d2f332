"""The replication app config."""

from django.apps import AppConfig


class ReplicationConfig(AppConfig):
    """Image replication between sites: endpoints, rules, executions and their per-repository tasks, the copier."""

    name = "replication"
