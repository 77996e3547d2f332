"""A real Celery worker process for the integration tests, on Redis, sharing the test database."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import kombu.pools
import pytest
from celery import Celery

from portal.core.jobs import SCAN_QUEUE
from tests.integration.processes import stop_process

BASE_DIR = Path(__file__).resolve().parents[2]
START_TIMEOUT = 30.0
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"


@dataclass
class CeleryProcess:
    """A running Celery process (worker or beat) and the file its output goes to."""

    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        """What the process printed so far."""
        return self.log_path.read_text(errors="replace")

    def wait_until_logged(self, marker: str, what: str) -> None:
        """Wait until the process prints `marker` (it has started); fail the test with its output otherwise."""
        deadline = time.monotonic() + START_TIMEOUT
        while marker not in self.log():
            if self.process.poll() is not None:
                pytest.fail(f"{what} exited with {self.process.returncode}:\n{self.log()[-3000:]}")
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"{what} did not start within {START_TIMEOUT:.0f} s:\n{self.log()[-3000:]}")
            time.sleep(0.2)

    def stop(self) -> None:
        """Warm shutdown (a worker finishes its current task), then kill if it hangs."""
        stop_process(self.process, grace=15)


@dataclass
class Worker(CeleryProcess):
    """A running `celery worker` and the queue it alone consumes."""

    queue: str


def redis_url() -> str:
    """The Redis database the tests may use as broker (WHARF_TEST_REDIS_URL), checked to answer."""
    import redis

    url = os.environ.get("WHARF_TEST_REDIS_URL") or DEFAULT_REDIS_URL
    try:
        redis.Redis.from_url(url, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis at {url} (WHARF_TEST_REDIS_URL) does not answer: {exc}")
    return url


def forget_queue(url: str, queue: str) -> None:
    """Remove the session's queue and its binding from Redis, so runs leave no keys behind."""
    import redis

    redis.Redis.from_url(url).delete(queue, f"_kombu.binding.{queue}")


def database_url(settings_dict: dict[str, Any]) -> str:
    """A WHARF_DATABASE_URL naming the database the test process uses (the test database, once set up)."""
    engine, name = settings_dict["ENGINE"], str(settings_dict["NAME"])
    if engine.endswith("sqlite3"):
        if not name or name == ":memory:" or "mode=memory" in name:
            pytest.fail(
                "the Celery worker cannot share an in-memory SQLite test database: "
                "run the integration tests with WHARF_DATABASE_URL=postgres://..."
            )
        return f"sqlite:///{name}"
    if "postgresql" not in engine:
        pytest.fail(f"no URL form known for the database engine {engine}")
    user = quote(settings_dict.get("USER") or "", safe="")
    password = quote(settings_dict.get("PASSWORD") or "", safe="")
    credentials = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = f":{settings_dict['PORT']}" if settings_dict.get("PORT") else ""
    return f"postgres://{credentials}{host}{port}/{quote(name, safe='')}"


def spawn(command: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen:
    """Start a portal process from the repository, with `env` over the test's environment, output to log_path."""
    with log_path.open("w") as log:
        return subprocess.Popen(command, cwd=BASE_DIR, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)


def start_worker(env: dict[str, str], workdir: Path, queue: str, scans: bool = True) -> Worker:
    """Start `python -m celery -A portal worker` consuming only `queue` (and its scans queue: one test worker takes
    every job; `scans=False` leaves scan jobs to another worker, as production's default worker does), and wait
    until it is ready."""
    log_path = workdir / "worker.log"
    queues = f"{queue},{queue}.{SCAN_QUEUE}" if scans else queue
    command = [
        sys.executable, "-m", "celery", "-A", "portal", "worker", "--pool", "solo", "-c", "1",
        "--loglevel", "INFO", "-Q", queues, "-n", f"{queue}-{workdir.name}@%h", "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]  # fmt: skip
    # Tasks the worker itself sends (a job's next attempt, a follow-up) go to the same queue.
    worker = Worker(spawn(command, {**env, "WHARF_TASK_QUEUE": queue}, log_path), log_path, queue)
    worker.wait_until_logged(" ready.", "the Celery worker")
    return worker


@contextmanager
def running_worker(workdir: Path, env: Mapping[str, str]) -> Iterator[tuple[Worker, str]]:
    """A real worker on the test database and the tests' Redis, consuming a queue of its own; yields (worker, broker).

    `env` adds what differs between the tests that use one (a directory to log in against, a registry to copy
    from). The worker is stopped and its queue forgotten afterwards.
    """
    from django.db import connection

    broker = redis_url()
    worker_env = {
        "WHARF_BROKER_URL": broker,
        "WHARF_DATABASE_URL": database_url(connection.settings_dict),
        "WHARF_TASKS_EAGER": "false",
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        **env,
    }
    # A queue of its own, so runs sharing the Redis database never take each other's tasks.
    worker = start_worker(worker_env, workdir, f"wharf-test-{uuid.uuid4().hex[:12]}")
    try:
        yield worker, broker
    finally:
        worker.stop()
        forget_queue(broker, worker.queue)


@contextmanager
def sending_to(app: Celery, broker_url: str, queue: str) -> Iterator[None]:
    """Make this process's Celery app send tasks to `queue` on `broker_url`, then restore it."""
    from django.test import override_settings

    names = ("broker_url", "broker_transport_options", "task_default_queue", "task_always_eager")
    saved = {name: app.conf[name] for name in names}
    _reset_pools(app)
    # The app reads the CELERY_* Django settings first, so they change too.
    overrides = override_settings(
        CELERY_BROKER_URL=broker_url, CELERY_TASK_DEFAULT_QUEUE=queue, CELERY_TASK_ALWAYS_EAGER=False
    )
    overrides.enable()
    app.conf.update(broker_url=broker_url, broker_transport_options={}, task_default_queue=queue)
    app.conf.task_always_eager = False
    try:
        yield
    finally:
        overrides.disable()
        _reset_pools(app)
        app.conf.update(saved)


def _reset_pools(app: Celery) -> None:
    """Drop cached broker connections so the next send connects to the broker now configured."""
    # The app's pools live in kombu's process-wide registry, keyed by connection: clear both. The
    # app's AMQP helper caches the default queue and router, so it is rebuilt from the new settings.
    kombu.pools.reset()
    app._pool = None
    app.__dict__.pop("amqp", None)
