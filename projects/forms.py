"""Forms of the project pages; the services check the rules, the forms only parse input."""

from __future__ import annotations

from django import forms

from projects.models import Role, Severity


class ProjectCreateForm(forms.Form):
    """The +Project dialog."""

    name = forms.CharField(label="Project name", max_length=300, widget=forms.TextInput(attrs={"autofocus": True}))
    public = forms.BooleanField(
        label="Public", required=False, help_text="Anyone logged in may see and pull from a public project."
    )


class MemberAddForm(forms.Form):
    """The + Add member dialog: one user or group picked from the search, and a role."""

    identity = forms.CharField(error_messages={"required": "Choose a user or group from the search results."})
    role = forms.ChoiceField(label="Role in project", choices=Role.choices, initial=Role.DEVELOPER)

    def clean_identity(self) -> tuple[str, str]:
        """'user:alice' or 'group:devs' as (kind, name)."""
        kind, _, name = self.cleaned_data["identity"].partition(":")
        if kind not in ("user", "group") or not name:
            raise forms.ValidationError("Choose a user or group from the search results.")
        return kind, name


class MemberRoleForm(forms.Form):
    """The Edit member dialog."""

    role = forms.ChoiceField(label="Role in project", choices=Role.choices)


class ProjectSettingsForm(forms.Form):
    """The Configuration tab."""

    public = forms.BooleanField(
        label="Public", required=False, help_text="Anyone logged in may see and pull from this project."
    )
    content_trust = forms.BooleanField(
        label="Enable content trust", required=False, help_text="Only signed images may be pulled and run."
    )
    prevent_vulnerable = forms.BooleanField(
        label="Prevent vulnerable images from running",
        required=False,
        help_text="Pulls and provisioning refuse an image of this project until a scan found nothing at or above "
        "the severity below that the CVE allowlists do not excuse (an image not scanned yet is refused too).",
    )
    severity = forms.ChoiceField(
        label="Prevent images with vulnerabilities of severity",
        choices=Severity.choices,
        help_text="Images with vulnerabilities of this severity or higher are blocked.",
    )
    auto_scan = forms.BooleanField(
        label="Automatically scan images on push",
        required=False,
        help_text="Every image pushed to the project is scanned for vulnerabilities at once.",
    )
