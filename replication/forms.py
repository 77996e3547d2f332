"""Forms of the replication pages: the endpoint and rule dialogs. They parse input; the services check the rules."""

from __future__ import annotations

from typing import Any

from django import forms

from projects.models import Project
from replication.models import Endpoint, EndpointKind, Rule, Trigger

VERIFY_HELP = (
    "On: only certificates the portal already trusts are accepted. Off (a self-signed or private certificate): "
    "the remote's certificate is shown with its thumbprints and pinned when you trust it; it is never skipped."
)


class EndpointForm(forms.Form):
    """+ New Endpoint and Edit: name, kind, URL, the login replication uses there and Verify Remote Cert."""

    name = forms.CharField(label="Endpoint name", max_length=100)
    kind = forms.ChoiceField(label="Kind", choices=EndpointKind.choices, initial=EndpointKind.WHARF)
    url = forms.CharField(
        label="Endpoint URL", max_length=255, help_text="The registry's full address, e.g. https://dr.example:443."
    )
    username = forms.CharField(label="User name", max_length=150, required=False)
    password = forms.CharField(
        label="Password",
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=True),
        help_text="An administrator there, or an account with write permission on the destination project.",
    )
    verify_remote_cert = forms.BooleanField(
        label="Verify Remote Cert", required=False, initial=True, help_text=VERIFY_HELP
    )

    def __init__(self, data: Any = None, *, endpoint: Endpoint | None = None, **kwargs: Any) -> None:
        if endpoint is not None and data is None:
            kwargs["initial"] = {
                "name": endpoint.name,
                "kind": endpoint.kind,
                "url": endpoint.url,
                "username": endpoint.credential.username if endpoint.credential else "",
                "verify_remote_cert": endpoint.verify_remote_cert,
            }
        super().__init__(data, **kwargs)
        if endpoint is not None:
            self.fields["password"].help_text = "Leave empty to keep the saved password."

    def retry_fields(self) -> dict[str, str]:
        """The posted values as hidden fields, so the trust dialog can send them back to retry."""
        data = self.cleaned_data if hasattr(self, "cleaned_data") else {}
        hidden = {name: str(data.get(name) or "") for name in ("name", "kind", "url", "username", "password")}
        if data.get("verify_remote_cert"):
            hidden["verify_remote_cert"] = "on"
        return hidden


class RuleForm(forms.Form):
    """New Replication Rule and Edit: what goes (project and filters), where (endpoint, project there) and when."""

    name = forms.CharField(label="Name", max_length=100)
    description = forms.CharField(label="Description", required=False, widget=forms.Textarea(attrs={"rows": 2}))
    project = forms.ModelChoiceField(
        label="Source project", queryset=Project.objects.order_by("name"), to_field_name="name"
    )
    repository_filter = forms.CharField(
        label="Repository filter", max_length=255, required=False, help_text="A glob on the name inside the project."
    )
    tag_filter = forms.CharField(label="Tag filter", max_length=128, required=False, help_text="A glob, e.g. 1.*")
    endpoint = forms.ModelChoiceField(
        label="Endpoint", queryset=Endpoint.objects.order_by("name"), to_field_name="name"
    )
    destination_project = forms.CharField(
        label="Destination project",
        max_length=255,
        required=False,
        widget=forms.TextInput(attrs={"placeholder": "same as source"}),
    )
    trigger = forms.ChoiceField(label="Trigger Mode", choices=Trigger.choices, initial=Trigger.MANUAL)
    replicate_deletion = forms.BooleanField(label="Also delete on the endpoint what is deleted here", required=False)
    cron = forms.CharField(
        label="Schedule",
        max_length=100,
        required=False,
        help_text="Five cron fields on the portal's clock: minute hour day-of-month month day-of-week, e.g. 0 2 * * *.",
    )
    enabled = forms.BooleanField(
        label="Enable rule", required=False, initial=True, help_text="An enabled rule replicates what matches now."
    )

    def __init__(self, data: Any = None, *, rule: Rule | None = None, **kwargs: Any) -> None:
        if rule is not None and data is None:
            kwargs["initial"] = {
                "name": rule.name,
                "description": rule.description,
                "project": rule.project.name,
                "repository_filter": rule.repository_filter,
                "tag_filter": rule.tag_filter,
                "endpoint": rule.endpoint.name,
                "destination_project": rule.destination_project,
                "trigger": rule.trigger,
                "replicate_deletion": rule.replicate_deletion,
                "cron": rule.cron,
                "enabled": rule.enabled,
            }
        super().__init__(data, **kwargs)
        # Immediate and scheduled rules each show their own field; static/wharf/wharf.js swaps them on change.
        self.fields["trigger"].widget.attrs["data-controls"] = "trigger"

    @property
    def trigger_value(self) -> str:
        """The trigger the dialog shows now (posted, else initial), to show the fields that belong to it."""
        return str(self["trigger"].value() or Trigger.MANUAL)
