"""Celery tasks and job runners of the hosts app; thin: load, call the collection or container service, record."""

from __future__ import annotations

from celery import shared_task

from hosts import collection, containers
from portal.core.jobs import register

register(containers.PROVISION, containers.run_provision, on_failed=containers.provision_failed)
for _kind in containers.ACTION_KINDS.values():
    register(_kind, containers.run_action)


@shared_task(name="hosts.collect_host")
def collect_host(host_id: int) -> None:
    """Collect one host's health, facts and containers now (after it is added or enabled)."""
    collection.collect_host_by_id(host_id)


@shared_task(name="hosts.collect_all")
def collect_all() -> None:
    """One collection cycle over every enabled host (the beat runs it every collection interval)."""
    collection.collect_all()
