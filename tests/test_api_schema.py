"""The API answers as its published OpenAPI schema says: schemathesis fuzzes every operation.

Every operation gets a bounded number of generated requests (valid and invalid) as a portal
admin and as a project developer, with all of schemathesis' checks: no server error, every
status code, content type, header and body documented, invalid input refused, valid input not
refused. Operations that connect to an address the caller chooses (registry and host verify,
certificate fetch, image search) are given 127.0.0.1:1, which refuses at once, and any other
name resolution is refused too, so nothing leaves the machine.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from functools import cache
from typing import Any

import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from django.test import override_settings
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, Phase, settings
from schemathesis import GenerationMode
from schemathesis.config._checks import NotAServerErrorConfig
from schemathesis.specs.openapi.checks import positive_data_acceptance

from portal.wsgi import application
from projects.models import Membership, Project, Role
from registries.models import ExternalRegistry
from tests.conftest import PASSWORD, basic

# Refuses at once: nothing listens on port 1 of the loopback.
REFUSING = "127.0.0.1:1"
REFUSING_URL = f"http://{REFUSING}"
# Body fields that name an address the portal connects to.
ADDRESS_FIELDS = {"address": REFUSING_URL, "url": REFUSING_URL}
EXAMPLES_PER_OPERATION = 12

# The two fuzzing tests are the longest that need no real service (about a minute each). As an xdist group of two,
# bigger than any single test, `make test` (--dist loadgroup) hands them to a worker at the start, beside the
# services group, instead of leaving one for the last minutes of the run.
pytestmark = pytest.mark.xdist_group("api-schema")


@cache
def published_schema() -> dict[str, Any]:
    """The schema /api/v1/schema/ serves, generated once per session."""
    return SchemaGenerator().get_schema(request=None, public=True)


@pytest.fixture
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Resolve only loopback addresses: a generated host name never reaches a DNS server."""
    resolve = socket.getaddrinfo

    def loopback_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name not in ("localhost", "::1") and not name.startswith("127."):
            raise socket.gaierror(socket.EAI_NONAME, f"{name} is not resolved in this test")
        return resolve(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", loopback_getaddrinfo)


@pytest.fixture
def _connection_kept() -> Iterator[None]:
    """Requests keep the test's database connection (and its transaction), as Django's test client does."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def api_schema(
    db, settings, _connection_kept, _loopback_only, settings_registry_refusing
) -> schemathesis.schemas.BaseSchema:
    """The published schema, fuzzed through the WSGI application in the test's transaction, with every check."""
    # The checks send wrong credentials on purpose; a lockout would turn every later answer into a 429.
    settings.AXES_FAILURE_LIMIT = 1_000_000
    schema = schemathesis.openapi.from_dict(published_schema())
    schema.app = application
    schema.config.generation.update(
        modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
        max_examples=EXAMPLES_PER_OPERATION,
        # PostgreSQL cannot store NUL, so every text field refuses it (a 400): not worth an example each.
        allow_x00=False,
    )
    schema.config.checks.update(included_check_names=["all"])
    # 502 is the documented answer when the remote the caller named does not answer, as 127.0.0.1:1 never does:
    # the portal itself did not fail. Every other 5xx is a server error.
    schema.config.checks.not_a_server_error = NotAServerErrorConfig(expected_statuses=["2xx", "3xx", "4xx", "502"])
    return schema


@pytest.fixture
def settings_registry_refusing() -> Iterator[None]:
    """The integrated registry and Docker Hub both at a loopback port that refuses."""
    ExternalRegistry.objects.filter(project__isnull=True).update(address=REFUSING_URL)
    with override_settings(REGISTRY_URL=REFUSING_URL):
        yield


@pytest.fixture
def admin_authorization(make_user) -> str:
    """The Authorization header of a portal admin."""
    return basic(make_user("fuzz-admin", is_portal_admin=True).username, PASSWORD)


@pytest.fixture
def developer_authorization(make_user) -> str:
    """The Authorization header of a developer of project alpha."""
    developer = make_user("fuzz-developer")
    Membership.objects.create(project=Project.objects.create(name="alpha"), user=developer, role=Role.DEVELOPER)
    return basic(developer.username, PASSWORD)


# Operations whose valid-looking input may still be refused with a 400 for a reason JSON Schema cannot state,
# so schemathesis' "schema-valid input is accepted" check does not apply to them (every other check does).
STATEFUL_RULES = {
    "POST /api/v1/users": "the password policy (length, commonness, likeness to the user name)",
    "POST /api/v1/groups": "members must name existing users",
    "PATCH /api/v1/groups/{name}": "members must name existing users",
    "PUT /api/v1/groups/{name}/projects": "each pair must name an existing project",
    "PUT /api/v1/users/{name}/projects": "each pair must name an existing project",
    "POST /api/v1/registries": "the credential must exist; a plain-HTTP address needs insecure",
    "POST /api/v1/projects/{project_name}/registries": "the credential must exist; plain HTTP needs insecure",
    "POST /api/v1/registries/verify": "the credential and project must exist; plain HTTP needs insecure",
    "POST /api/v1/projects/{project_name}/hosts": "the credential must exist",
    "POST /api/v1/projects/{project_name}/hosts/verify": "the credential must exist",
    "POST /api/v1/tokens": "the expiry must be in the future",
    "POST /api/v1/login-lockouts/unlock": "a user name or an address, at least one",
    "POST /api/v1/jobs/directory-sync": "a directory must be configured",
    "POST /api/v1/certificates": "either url, or address and pem",
    "POST /api/v1/credentials": "the fields a kind needs (a username for a password, a key for a certificate)",
    "POST /api/v1/projects/{project_name}/containers": "the image must be allowed in the project and a host ON",
    "POST /api/v1/projects/{project_name}/members": "exactly one of user and group, naming a known one",
    "POST /api/v1/replication/endpoints": "a valid name; a user name needs a password; an address without a path",
    "POST /api/v1/replication/endpoints/ping": "the endpoint must exist; a user name needs a password",
    "POST /api/v1/replication/rules": "the project and endpoint must exist; a valid name, cron and filters",
    "POST /api/v1/system/cve-allowlist": "the expiry must not be in the past",
    "POST /api/v1/projects/{project_name}/cve-allowlist": "the expiry must not be in the past",
    "POST /api/v1/vulndb/import": "the file must be a vulndb bundle or a feed file named by its source",
    "POST /api/v1/vulndb/update": "each source must be one Wharf has an updater for",
    "POST /api/v1/scanners": "the URL the kind needs (Clair's indexer, an adapter's), a base64 PSK, a new name",
}


def checks_for(case: schemathesis.Case) -> dict[str, Any]:
    """All checks, less positive-data acceptance where the operation has rules the schema cannot state."""
    if case.operation.label in STATEFUL_RULES:
        return {"excluded_checks": [positive_data_acceptance]}
    return {}


def to_loopback(case: schemathesis.Case) -> None:
    """Point every address the request names at the refusing loopback port."""
    if isinstance(case.body, dict):
        for field, value in ADDRESS_FIELDS.items():
            if field in case.body:
                case.body[field] = value


schema = schemathesis.pytest.from_fixture("api_schema")


FUZZING = settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


@schema.parametrize()
@FUZZING
def test_api_answers_a_portal_admin_as_documented(case: schemathesis.Case, admin_authorization: str) -> None:
    """Every answer to a portal admin matches the schema, and invalid input is refused."""
    to_loopback(case)
    case.call_and_validate(headers={"Authorization": admin_authorization}, **checks_for(case))


@schema.parametrize()
@FUZZING
def test_api_answers_a_developer_as_documented(case: schemathesis.Case, developer_authorization: str) -> None:
    """Every answer to a project developer matches the schema, and invalid input is refused."""
    to_loopback(case)
    case.call_and_validate(headers={"Authorization": developer_authorization}, **checks_for(case))
