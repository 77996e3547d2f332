"""Forms of the scanning pages."""

from __future__ import annotations

from typing import Any

from django import forms


class AllowlistEntryForm(forms.Form):
    """A CVE for the system's or a project's allowlist, with the last day it counts (optional)."""

    cve = forms.CharField(label="CVE", max_length=100, widget=forms.TextInput(attrs={"placeholder": "CVE-2024-1234"}))
    expires = forms.DateField(
        label="Expires",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        help_text="The last day it counts; empty: never expires.",
    )


class VulndbUploadForm(forms.Form):
    """A vulndb bundle (`manage.py vulndb export`) or a feed file named after its source, for air-gapped sites."""

    file = forms.FileField(label="Bundle or feed file")


class ScannerForm(forms.Form):
    """+ New Scanner and Edit: a Clair v4 deployment or a Harbor scanner adapter. The secrets are never shown
    again: on an edit an empty one keeps what is stored. The built-in scanner has only its description."""

    name = forms.CharField(label="Name", max_length=64, help_text="Lowercase letters, digits, '.', '_' and '-'.")
    kind = forms.ChoiceField(
        label="Kind", choices=[("clair", "Clair v4"), ("harbor_adapter", "Harbor scanner adapter")]
    )
    description = forms.CharField(label="Description", max_length=255, required=False)
    indexer_url = forms.CharField(
        label="Clair indexer URL", max_length=1000, required=False, help_text="e.g. http://clair.example:6060"
    )
    matcher_url = forms.CharField(
        label="Clair matcher URL", max_length=1000, required=False, help_text="Empty: the indexer's URL."
    )
    psk = forms.CharField(
        label="Clair PSK",
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Clair's auth.psk.key (base64); empty: no authentication.",
    )
    psk_issuer = forms.CharField(label="PSK issuer", max_length=100, required=False, help_text="Default: clairctl.")
    adapter_url = forms.CharField(
        label="Adapter URL", max_length=1000, required=False, help_text="As Harbor registers it; its API is /api/v1."
    )
    authorization = forms.CharField(
        label="Authorization",
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="The Authorization header value the adapter wants, e.g. Bearer <token>.",
    )
    enabled = forms.BooleanField(label="Enabled", required=False, initial=True)

    SECRETS = ("psk", "authorization")

    def __init__(self, data: Any = None, *, registration: Any = None, **kwargs: Any) -> None:
        if registration is not None and data is None:
            fields = ("name", "kind", "description", "indexer_url", "matcher_url", "psk_issuer", "adapter_url")
            kwargs["initial"] = {field: getattr(registration, field) for field in fields}
            kwargs["initial"]["enabled"] = registration.enabled
        super().__init__(data, **kwargs)
        self.registration = registration
        if registration is not None:
            # Name and kind stay what they are; the built-in scanner has nothing else to set.
            for field in ("name", "kind"):
                self.fields[field].disabled = True
                self.fields[field].required = False
            if registration.builtin:
                self.fields["kind"].choices = [("builtin", "Built-in scanner")]
                for field in ("indexer_url", "matcher_url", "psk", "psk_issuer", "adapter_url", "authorization"):
                    del self.fields[field]
            for secret in self.SECRETS:
                if secret in self.fields and getattr(registration, secret):
                    self.fields[secret].help_text = "Set. Leave empty to keep it."

    def service_data(self) -> dict[str, Any]:
        """What the service takes: the typed values, without the ones an edit cannot change."""
        data = dict(self.cleaned_data)
        if self.registration is not None:
            data.pop("name", None)
            data.pop("kind", None)
        return data
