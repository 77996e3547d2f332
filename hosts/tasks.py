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


@shared_task(name="hosts.provision_container")
def provision_container(job_id: int, spec: dict) -> None:
    """Run one provisioning job: pull, create and start the container described by `spec`."""
    from hosts import containers
    from portal.jobs import run_job

    run_job(job_id, lambda job, log: containers.run_provision(job, log, spec))


@shared_task(name="hosts.container_action")
def container_action(job_id: int, container_pk: int, action: str) -> None:
    """Run one container action job (start, stop, restart or remove)."""
    from hosts import containers
    from portal.jobs import run_job

    run_job(job_id, lambda job, log: containers.run_action(job, log, container_pk, action))
