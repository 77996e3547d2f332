"""A generic API test base, in the spirit of NetBox's `utilities/testing`: a resource is declared in a
few lines, and list / get / create / update / delete run under every role.

Each run checks the status the role must get and what its user would check next: the row in the
list (exactly when the role may get it), the row's key in the answer, one row more after a create
with the fields sent, the changed fields when the row is read again, the row gone after a delete,
and, when the role is refused, the same rows as before and an error body of `{detail, errors}`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db import models
from rest_framework.test import APIClient

from portal.core.models import User
from tests.conftest import ROLES

# The status of each role, in the order of ROLES:
# anonymous, viewer, developer, project_admin, other_project_admin, portal_admin.
Statuses = tuple[int, int, int, int, int, int]
OPERATIONS = ("list", "get", "create", "update", "delete")
ANON = 401


def statuses(ok: int, *, viewer: int = 403, developer: int = 403, project_admin: int | None = None,
             other_project_admin: int = 404) -> Statuses:  # fmt: skip
    """Who gets `ok` and who is refused how; by default only project and portal admins get `ok`."""
    return (ANON, viewer, developer, ok if project_admin is None else project_admin, other_project_admin, ok)


# Presets for a resource inside project alpha: members read, DevOps administrators write, and a
# project the caller may not see is a 404.
PROJECT_READ = statuses(200, viewer=200, developer=200)
PROJECT_WRITES = {"create": statuses(201), "update": statuses(200), "delete": statuses(204)}
# A resource of the whole portal that only portal administrators manage.
ADMIN_ONLY = {op: statuses(code, project_admin=403, other_project_admin=403) for op, code in
              {"list": 200, "get": 200, "create": 201, "update": 200, "delete": 204}.items()}  # fmt: skip


@dataclass
class Resource:
    """One API resource: where it lives, how to make a row of it, what to send, and who gets what."""

    name: str
    url: str  # the list URL; a row is at f"{url}/{key(row)}"
    model: type[models.Model]
    make: Callable[[dict[str, User | None]], models.Model]  # one row to read, change or delete
    expect: dict[str, Statuses]  # operation -> status per role; an operation not named is not offered
    key: Callable[[models.Model], str] = lambda row: str(row.pk)
    key_field: str = "id"  # the answer's field that holds the key
    create: dict[str, Any] | None = None
    update: dict[str, Any] | None = None
    rows: Callable[[], models.QuerySet] | None = None  # the rows a create adds to (default: all of model)
    list_visible: Statuses | None = None  # for a list everyone may ask: who finds the row in it (default: get)

    def __str__(self) -> str:
        return self.name

    def operations(self) -> list[str]:
        """The operations declared for this resource."""
        return [op for op in OPERATIONS if op in self.expect]

    def count(self) -> int:
        """How many rows of the resource exist now."""
        return (self.rows() if self.rows else self.model.objects.all()).count()


@dataclass
class Outcome:
    """What one call answered, and the rows before it."""

    status: int
    body: Any
    before: int
    row: models.Model
    extra: dict[str, Any] = field(default_factory=dict)


def call(resource: Resource, op: str, client: APIClient, row: models.Model) -> Outcome:
    """Make the call of `op` on the resource as the client."""
    detail = f"{resource.url}/{resource.key(row)}"
    before, fields = resource.count(), _fields(row)
    if op == "list":
        response = client.get(resource.url, {"page_size": 100})
    elif op == "get":
        response = client.get(detail)
    elif op == "create":
        response = client.post(resource.url, resource.create, format="json")
    elif op == "update":
        response = client.patch(detail, resource.update, format="json")
    else:
        response = client.delete(detail)
    body = response.json() if "json" in response.get("Content-Type", "") else None
    return Outcome(response.status_code, body, before, row, {"fields": fields})


def check(resource: Resource, op: str, role: str, outcome: Outcome, client: APIClient) -> None:
    """The status the role must get, then what a user would check after it."""
    expected = resource.expect[op][ROLES.index(role)]
    assert outcome.status == expected, f"{role}: {op} {resource} -> {outcome.status} {str(outcome.body)[:300]}"
    if expected >= 300:
        _check_refused(resource, op, outcome)
    else:
        CHECKS[op](resource, role, outcome, client)


def _check_refused(resource: Resource, op: str, outcome: Outcome) -> None:
    """A refused call changed nothing and said why."""
    assert resource.count() == outcome.before, f"a refused {op} of {resource} changed the rows"
    if op == "update":
        assert _fields(_fresh(outcome.row)) == outcome.extra["fields"], f"a refused update of {resource} changed it"
    if outcome.body is not None:
        assert set(outcome.body) == {"detail", "errors"}, outcome.body


def _list(resource: Resource, role: str, outcome: Outcome, client: APIClient) -> None:
    keys = [str(item[resource.key_field]) for item in outcome.body["results"]]
    visible = (resource.list_visible or resource.expect.get("get") or resource.expect["list"])[ROLES.index(role)]
    assert (resource.key(outcome.row) in keys) == (visible == 200), f"{role}: {resource.key(outcome.row)} in {keys}"
    assert outcome.body["count"] == len(keys)


def _get(resource: Resource, role: str, outcome: Outcome, client: APIClient) -> None:
    assert str(outcome.body[resource.key_field]) == resource.key(outcome.row)


def _create(resource: Resource, role: str, outcome: Outcome, client: APIClient) -> None:
    assert resource.count() == outcome.before + 1, f"{role}: create of {resource} added no row"
    answered = client.get(f"{resource.url}/{outcome.body[resource.key_field]}")
    shown = answered.json() if answered.status_code == 200 else outcome.body
    for name, value in resource.create.items():
        if name in shown:
            assert shown[name] == value, f"{resource}.{name}: sent {value!r}, shows {shown[name]!r}"


def _update(resource: Resource, role: str, outcome: Outcome, client: APIClient) -> None:
    shown = client.get(f"{resource.url}/{resource.key(_fresh(outcome.row))}").json()
    for name, value in resource.update.items():
        assert shown[name] == value, f"{resource}.{name}: sent {value!r}, reads back {shown[name]!r}"


def _delete(resource: Resource, role: str, outcome: Outcome, client: APIClient) -> None:
    assert resource.count() == outcome.before - 1
    assert not type(outcome.row).objects.filter(pk=outcome.row.pk).exists(), f"{resource} row still there"


CHECKS = {"list": _list, "get": _get, "create": _create, "update": _update, "delete": _delete}


def _fresh(row: models.Model) -> models.Model:
    return type(row).objects.get(pk=row.pk)


def _fields(row: models.Model) -> dict[str, Any]:
    """The row's stored values."""
    return {f.attname: getattr(row, f.attname) for f in row._meta.concrete_fields}
