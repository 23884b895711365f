from django import forms

from engagement_site.workspaces.models import (
    ApiKey,
    Workspace,
    locale_validator,
    validate_time_zone,
)
from engagement_site.workspaces.roles import Role


class WorkspaceSettingsForm(forms.Form):
    """A plain form (not a ModelForm): validation must not touch the instance before
    the service records the before/after values."""

    name = forms.CharField(max_length=120)
    time_zone = forms.CharField(max_length=64, validators=[validate_time_zone])
    default_locale = forms.CharField(max_length=10, validators=[locale_validator])

    @classmethod
    def for_workspace(cls, workspace: Workspace, data=None) -> "WorkspaceSettingsForm":
        initial = {
            "name": workspace.name,
            "time_zone": workspace.time_zone,
            "default_locale": workspace.default_locale,
        }
        return cls(data, initial=initial)


class MemberAddForm(forms.Form):
    email = forms.CharField(max_length=254, label="Email or username")
    role = forms.ChoiceField(choices=Role.choices, initial=Role.MARKETER)


class MemberRoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class ApiKeyCreateForm(forms.Form):
    name = forms.CharField(
        max_length=120, help_text="Where the key is used, e.g. 'iOS app' or 'CRM sync'."
    )
    kind = forms.ChoiceField(choices=ApiKey.Kind.choices)
    role = forms.ChoiceField(
        choices=[("", "-"), *list(Role.choices)], required=False, help_text="Secret keys only."
    )

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("kind") == ApiKey.Kind.SECRET and not cleaned.get("role"):
            self.add_error("role", "Choose the role this secret key acts with.")
        if cleaned.get("kind") == ApiKey.Kind.WRITE:
            cleaned["role"] = ""
        return cleaned
