"""The replication app config."""

from django.apps import AppConfig


class ReplicationConfig(AppConfig):
    """Image replication between sites: endpoints, rules, executions and their per-repository tasks, the copier."""

    name = "replication"

    def ready(self) -> None:
        """Pushes and deletes of the integrated registry start the immediate rules that take them."""
        from registries import events
        from replication import triggers

        if triggers.on_push not in events.PUSH_FOLLOWUPS:
            events.PUSH_FOLLOWUPS.append(triggers.on_push)
        if triggers.on_delete not in events.DELETE_FOLLOWUPS:
            events.DELETE_FOLLOWUPS.append(triggers.on_delete)
