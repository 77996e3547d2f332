"""First start: admin, default-project, PKI and schedules are made once; a second run changes nothing."""

from __future__ import annotations

from cryptography import x509
from django_celery_beat.models import PeriodicTask

from portal.bootstrap import DEFAULT_PROJECT, EXAMPLE_USERS, bootstrap
from portal.core.certificates import pki_paths
from portal.core.models import User
from projects.models import Project, Role
from projects.roles import can, effective_role


def test_first_start_creates_admin_and_public_default_project(db, monkeypatch) -> None:
    monkeypatch.delenv("WHARF_ADMIN_PASSWORD", raising=False)
    result = bootstrap()
    assert result.admin_password
    admin = User.objects.get(username="admin")
    assert admin.check_password(result.admin_password) and admin.is_portal_admin
    assert Project.objects.get(name=DEFAULT_PROJECT).public
    assert set(PeriodicTask.objects.values_list("task", flat=True)) >= {
        "portal.scheduled_directory_sync",
        "portal.purge_audit_log",
    }
    second = bootstrap()
    assert second.admin_password is None
    assert User.objects.get(username="admin").check_password(result.admin_password)
    assert Project.objects.filter(name=DEFAULT_PROJECT).count() == 1


def test_admin_password_from_environment_is_not_printed(db, monkeypatch) -> None:
    monkeypatch.setenv("WHARF_ADMIN_PASSWORD", "Chosen-by-operator-1")
    assert bootstrap().admin_password is None
    assert User.objects.get(username="admin").check_password("Chosen-by-operator-1")


def test_example_users_one_per_role(db) -> None:
    result = bootstrap(example_users=True)
    assert set(result.example_passwords) == set(EXAMPLE_USERS)
    project = Project.objects.get(name=DEFAULT_PROJECT)
    assert can(User.objects.get(username="vic-cloud-admin"), "create_project")
    for username, role in EXAMPLE_USERS.items():
        if role is not None:
            assert effective_role(User.objects.get(username=username), project) == role
    assert effective_role(User.objects.get(username="vic-viewer"), project) == Role.VIEWER
    assert bootstrap(example_users=True).example_passwords == {}


def test_server_certificate_is_signed_by_the_portal_ca(db) -> None:
    paths = pki_paths()
    ca = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
    server = x509.load_pem_x509_certificate(paths.server_cert.read_bytes())
    server.verify_directly_issued_by(ca)
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
