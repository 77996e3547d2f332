"""Where credentials and pinned certificates are used, answered for a whole list at once."""

from __future__ import annotations

from django.utils import timezone

from hosts.models import ContainerHost
from portal.core.credentials import credential_usages, credentials_usages
from portal.core.models import Credential, TrustedCertificate
from portal.core.trust import certificate_usages, certificates_usages
from registries.models import ExternalRegistry


def _pin(address: str) -> TrustedCertificate:
    now = timezone.now()
    return TrustedCertificate.objects.create(
        address=address, pem="-", subject="CN=x", issuer="CN=x", not_before=now, not_after=now, sha1="-", sha256="-"
    )


def test_each_credential_in_a_list_names_its_own_users(alpha) -> None:
    hub, docker, idle = (Credential.objects.create(name=name, kind="password") for name in ("hub", "docker", "idle"))
    for name in ("mirror", "cache"):
        ExternalRegistry.objects.create(name=name, address=f"https://{name}.example", credential=hub)
    ContainerHost.objects.create(project=alpha, name="vch-1", url="https://vch-1:2376", credential=docker)
    ContainerHost.objects.create(project=alpha, name="vch-2", url="https://vch-2:2376", credential=hub)
    assert credentials_usages([hub, docker, idle]) == {
        hub.pk: ["registry 'cache', registry 'mirror'", "host 'vch-2' (project 'alpha')"],
        docker.pk: ["host 'vch-1' (project 'alpha')"],
        idle.pk: [],
    }
    assert credential_usages(docker) == ["host 'vch-1' (project 'alpha')"]


def test_each_pinned_certificate_in_a_list_names_what_connects_to_its_address(alpha) -> None:
    registry_pin, host_pin, idle = _pin("mirror.example:443"), _pin("vch-1:2376"), _pin("other:443")
    ExternalRegistry.objects.create(name="mirror", address="https://mirror.example/library", namespace="library")
    ExternalRegistry.objects.create(name="plain", address="http://mirror.example")
    ContainerHost.objects.create(project=alpha, name="vch-1", url="https://vch-1:2376")
    assert certificates_usages([registry_pin, host_pin, idle]) == {
        registry_pin.pk: ["registry 'mirror'"],
        host_pin.pk: ["host 'vch-1' (project 'alpha')"],
        idle.pk: [],
    }
    assert certificate_usages(host_pin) == ["host 'vch-1' (project 'alpha')"]
