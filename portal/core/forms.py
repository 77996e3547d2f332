"""Forms of the administration pages; the services check the rules, the forms only parse input."""

from __future__ import annotations

from typing import Any

from django import forms
from django.db.models import Case, IntegerField, Value, When

from portal.core.models import Group, ScanSchedule, Source, User


class RepeatedPasswordForm(forms.Form):
    """A form whose new password is typed twice: `repeated` names the field and its confirmation."""

    repeated: tuple[str, str]

    def clean(self) -> dict[str, Any]:
        """Both passwords must match."""
        data = super().clean()
        password, again = self.repeated
        if data.get(password) and data.get(password) != data.get(again):
            self.add_error(again, "The two passwords differ.")
        return data


class UserCreateForm(RepeatedPasswordForm):
    """The +User dialog: a local account."""

    repeated = ("password", "password_again")

    username = forms.CharField(label="User name", max_length=150, widget=forms.TextInput(attrs={"autofocus": True}))
    first_name = forms.CharField(label="First name", max_length=150, required=False)
    last_name = forms.CharField(label="Last name", max_length=150, required=False)
    email = forms.EmailField(label="Email", required=False)
    password = forms.CharField(label="Password", widget=forms.PasswordInput(render_value=True), strip=False)
    password_again = forms.CharField(label="Confirm password", widget=forms.PasswordInput(), strip=False)


class UserEditForm(forms.Form):
    """The Edit user dialog."""

    first_name = forms.CharField(label="First name", max_length=150, required=False)
    last_name = forms.CharField(label="Last name", max_length=150, required=False)
    email = forms.EmailField(label="Email", required=False)
    is_active = forms.BooleanField(label="Enabled", required=False, help_text="Disabled users cannot log in.")


class PasswordResetForm(RepeatedPasswordForm):
    """The Reset Password dialog: a portal admin sets another local user's password, typed twice."""

    repeated = ("password", "password_again")

    password = forms.CharField(label="New password", widget=forms.PasswordInput(attrs={"autofocus": True}), strip=False)
    password_again = forms.CharField(label="Confirm new password", widget=forms.PasswordInput(), strip=False)


class MemberChoiceField(forms.ModelMultipleChoiceField):
    """Users picked by user name, labelled with their full name and where they come from."""

    def label_from_instance(self, user: User) -> str:
        """'carol (Carol Jones)', marked when the user comes from the directory or is disabled."""
        full_name = user.get_full_name()
        label = f"{user.username} ({full_name})" if full_name else user.username
        if user.source != Source.LOCAL:
            label += " [directory]"
        return label if user.is_active else f"{label} [disabled]"


class GroupForm(forms.Form):
    """The +Group and Edit group dialogs: a name (fixed once created) and members from the known users."""

    name = forms.CharField(label="Group name", max_length=255, widget=forms.TextInput(attrs={"autofocus": True}))
    members = MemberChoiceField(
        label="Members",
        queryset=User.objects.none(),
        to_field_name="username",
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )

    def __init__(self, *args: Any, group: Group | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        current = list(group.members.all()) if group else []
        # The current members come first, so editing a large group starts with who is in it.
        chosen = Case(
            When(pk__in=[u.pk for u in current], then=Value(0)), default=Value(1), output_field=IntegerField()
        )
        self.fields["members"].queryset = User.objects.annotate(chosen=chosen).order_by("chosen", "username")
        if group is not None:
            self.fields["name"].disabled = True
            self.fields["name"].widget.attrs.pop("autofocus", None)
            self.fields["name"].help_text = "A group cannot be renamed."
            self.initial = {"name": group.name, "members": current}


class SettingsForm(forms.Form):
    """Administration > Configuration > System Settings."""

    token_expiration_minutes = forms.IntegerField(
        label="Token Expiration (Minutes)",
        widget=forms.NumberInput(attrs={"min": 1, "max": 525600}),
        help_text="Idle time after which a login session ends.",
    )
    scan_schedule = forms.ChoiceField(label="Vulnerability Scanning", choices=ScanSchedule.choices)
    scan_time = forms.TimeField(
        label="Daily at", widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"), help_text="Server time."
    )
    audit_retention_days = forms.IntegerField(
        label="Keep audit logs for (days)", widget=forms.NumberInput(attrs={"min": 1})
    )


class PasswordForm(RepeatedPasswordForm):
    """Profile > Change password."""

    repeated = ("new_password", "new_password_again")

    old_password = forms.CharField(label="Current password", widget=forms.PasswordInput(), strip=False)
    new_password = forms.CharField(label="New password", widget=forms.PasswordInput(), strip=False)
    new_password_again = forms.CharField(label="Confirm new password", widget=forms.PasswordInput(), strip=False)


class TokenForm(forms.Form):
    """Profile > API tokens > Create."""

    name = forms.CharField(label="Token name", max_length=100)
    expires = forms.DateTimeField(
        label="Expires",
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        help_text="Leave empty for a token that does not expire.",
    )


class SecretTextarea(forms.Textarea):
    """A textarea for a secret (a private key): like a password box, it never puts the value back in the page."""

    def format_value(self, value: Any) -> None:
        return None


class CredentialForm(forms.Form):
    """The +Credential and Edit credential dialogs: a username/password or a certificate and its private key.

    Secrets are never put back into the page: on edit, an empty secret keeps the stored one.
    """

    kind = forms.ChoiceField(
        label="Type", choices=[("password", "Username / Password"), ("certificate", "Certificate")], required=False
    )
    name = forms.CharField(label="Name", max_length=255, widget=forms.TextInput(attrs={"autofocus": True}))
    username = forms.CharField(label="Username", max_length=255, required=False)
    password = forms.CharField(
        label="Password",
        required=False,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    certificate = forms.CharField(
        label="Public certificate",
        required=False,
        widget=forms.Textarea(attrs={"rows": 6, "class": "clr-textarea wharf-pem"}),
        help_text="The content of cert.pem (-----BEGIN CERTIFICATE-----).",
    )
    private_key = forms.CharField(
        label="Private certificate",
        required=False,
        strip=False,
        widget=SecretTextarea(attrs={"rows": 6, "class": "clr-textarea wharf-pem", "autocomplete": "off"}),
        help_text="The content of key.pem (-----BEGIN PRIVATE KEY-----), unencrypted.",
    )

    project = forms.ChoiceField(
        label="Project",
        required=False,
        help_text="Global credentials are used by portal administrators only; a project's own, by its administrators "
        "too, for that project's registries and hosts.",
    )

    def __init__(self, *args: Any, editing: bool = False, projects: list[str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["project"].choices = [("", "Global")] + [(name, name) for name in projects or []]
        if editing:
            del self.fields["project"]  # a credential stays with its project
            self.fields["password"].help_text = "Leave empty to keep the stored password."
            self.fields["private_key"].help_text = "Leave empty to keep the stored private key."
            self.fields["name"].widget.attrs.pop("autofocus", None)


class CertificateUrlForm(forms.Form):
    """Identity Management > Certificates > +Certificate: the server whose certificate to show."""

    url = forms.CharField(
        label="Server URL",
        max_length=1000,
        widget=forms.TextInput(attrs={"autofocus": True, "placeholder": "https://registry.example:443"}),
        help_text="The portal connects and shows the certificate the server presents, for you to verify.",
    )
