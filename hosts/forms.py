"""Forms of the hosts pages: the +Host dialog and the Provision dialog."""

from __future__ import annotations

from typing import Any

from django import forms

from hosts.models import ContainerHost, HostKind, HostState
from portal.core.credentials import usable_credentials
from portal.core.models import Credential, CredentialKind, User
from projects.models import Project

RESTART_POLICIES = [
    ("no", "No"),
    ("always", "Always"),
    ("unless-stopped", "Unless stopped"),
    ("on-failure", "On failure"),
]


class HostForm(forms.Form):
    """+Host: name, type (VCH or Docker), endpoint URL and an optional client certificate credential."""

    name = forms.CharField(max_length=100)
    kind = forms.ChoiceField(
        label="Type",
        choices=[(HostKind.VCH, "VCH"), (HostKind.DOCKER, "Docker")],
        initial=HostKind.DOCKER,
        widget=forms.RadioSelect(attrs={"class": "clr-radio"}),
    )
    url = forms.CharField(
        label="URL",
        max_length=255,
        help_text="https://hostname:2376 (TLS) or http://hostname:2375 (no TLS).",
    )
    credential = forms.ModelChoiceField(
        label="Credentials",
        queryset=Credential.objects.none(),
        to_field_name="name",
        required=False,
        empty_label="None",
        help_text="A client certificate, for a host that verifies client certificates (full TLS).",
    )

    def __init__(self, *args: Any, user: User | None = None, project: Project | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        usable = usable_credentials(user, project).filter(kind=CredentialKind.CERTIFICATE).order_by("name")
        self.fields["credential"].queryset = usable

    def retry_fields(self) -> dict[str, str]:
        """The posted values as hidden fields, so the trust dialog can send them back to retry."""
        data = getattr(self, "cleaned_data", {})
        hidden = {"name": data.get("name", ""), "kind": data.get("kind", ""), "url": data.get("url", "")}
        if data.get("credential"):
            hidden["credential"] = data["credential"].name
        return hidden


class ProvisionForm(forms.Form):
    """Provision a container: image, name, command, environment, ports, restart policy and the target host."""

    image = forms.CharField(
        max_length=500,
        help_text="As for docker pull, e.g. wharf.example:8282/web/app:1.0 (from a registry of this project).",
    )
    name = forms.CharField(max_length=255, required=False, help_text="Left empty, Docker picks a name.")
    command = forms.CharField(max_length=1000, required=False, help_text="Overrides the image's command.")
    environment = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}), required=False, help_text="One KEY=VALUE a line."
    )
    ports = forms.CharField(
        label="Port bindings",
        widget=forms.Textarea(attrs={"rows": 2}),
        required=False,
        help_text="One HOST:CONTAINER a line as for docker run -p, e.g. 8080:80 or 127.0.0.1:8053:53/udp.",
    )
    restart_policy = forms.ChoiceField(label="Restart policy", choices=RESTART_POLICIES, initial="no")
    host = forms.ModelChoiceField(
        label="Host",
        queryset=ContainerHost.objects.none(),
        required=False,
        empty_label="Any ON host (least loaded)",
    )

    def __init__(self, *args: Any, project: Project, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["host"].queryset = project.hosts.filter(state=HostState.ON).order_by("name")

    def clean_environment(self) -> list[str]:
        """The KEY=VALUE lines (the provisioning service checks each and names a bad one)."""
        return [line.strip() for line in self.cleaned_data["environment"].splitlines() if line.strip()]

    def clean_ports(self) -> list[str]:
        """The HOST:CONTAINER lines (the provisioning service parses them as docker run -p does)."""
        return [line.strip() for line in self.cleaned_data["ports"].splitlines() if line.strip()]
