"""Forms of the registry pages: which repositories or tag to delete, and the garbage collection schedule."""

from __future__ import annotations

from typing import Any

from django import forms

from portal.core.credentials import usable_credentials
from portal.core.models import Credential, User
from projects.models import Project
from registries.models import GcSchedule, Repository, Tag


class RepositoryDeleteForm(forms.Form):
    """The repositories selected in a project's Internal Repositories table (by full name)."""

    repositories = forms.ModelMultipleChoiceField(
        queryset=Repository.objects.none(),
        to_field_name="name",
        widget=forms.MultipleHiddenInput,
        error_messages={"required": "Select at least one repository first."},
    )

    def __init__(self, *args: object, repositories: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.fields["repositories"].queryset = repositories


class TagDeleteForm(forms.Form):
    """The tags ticked in a repository's tags table (by name)."""

    tag = forms.ModelMultipleChoiceField(
        queryset=Tag.objects.none(),
        to_field_name="name",
        widget=forms.MultipleHiddenInput,
        error_messages={"required": "Select at least one tag to delete."},
    )

    def __init__(self, *args: object, tags: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.fields["tag"].queryset = tags


class GcScheduleForm(forms.Form):
    """When garbage collection runs on its own: never, or daily at a time."""

    frequency = forms.ChoiceField(label="Schedule", choices=GcSchedule.Frequency.choices)
    time = forms.TimeField(
        label="Daily at", widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"), help_text="Server time."
    )


class RegistryForm(forms.Form):
    """+Registry: address (with an optional namespace), name, credential and the insecure (HTTP) tick."""

    address = forms.CharField(
        max_length=255,
        help_text="Scheme, host, port and optionally a namespace, e.g. https://registry.example:443/vmware.",
    )
    name = forms.CharField(max_length=100)
    credential = forms.ModelChoiceField(
        queryset=Credential.objects.none(), to_field_name="name", required=False, empty_label="None"
    )
    insecure = forms.BooleanField(
        label="Insecure (HTTP)",
        required=False,
        help_text=(
            "Allows a plain HTTP address. Nothing is encrypted: anyone on the network path can read the "
            "credential and change images. Docker hosts must list the registry in --insecure-registry to pull."
        ),
    )

    def __init__(self, *args: Any, user: User | None = None, project: Project | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["credential"].queryset = usable_credentials(user, project).order_by("name")

    def retry_fields(self) -> dict[str, str]:
        """The posted values as hidden fields, so the trust dialog can send them back to retry."""
        data = self.cleaned_data if hasattr(self, "cleaned_data") else {}
        hidden = {"address": data.get("address", ""), "name": data.get("name", "")}
        if data.get("credential"):
            hidden["credential"] = data["credential"].name
        if data.get("insecure"):
            hidden["insecure"] = "on"
        return hidden
