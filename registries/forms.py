"""Forms of the registry pages: which repositories or tag to delete, and the garbage collection schedule."""

from __future__ import annotations

from django import forms

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
    """The tag selected in a repository's tags table."""

    tag = forms.ModelChoiceField(
        queryset=Tag.objects.none(),
        to_field_name="name",
        widget=forms.HiddenInput,
        error_messages={"required": "Select a tag first."},
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
