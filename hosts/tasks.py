"""Celery tasks of the hosts app; thin: load, call the collection or container service, record."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="hosts.collect_host")
def collect_host(host_id: int) -> None:
    """Collect one host's health, facts and containers now (after it is added or enabled)."""
    from hosts import collection

    collection.collect_host_by_id(host_id)


@shared_task(name="hosts.collect_all")
def collect_all() -> None:
    """One collection cycle over every enabled host (the beat runs it every collection interval)."""
    from hosts import collection

    collection.collect_all()
