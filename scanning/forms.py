"""Forms of the scanning pages."""

from __future__ import annotations

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
