"""Forms of the delivery console. The channel settings form is built from the
channel's pydantic Config, so a plug-in channel gets its page without writing one;
pydantic stays the judge of what is valid (its errors land on the fields)."""

from __future__ import annotations

import json
import types
import typing
from typing import Any, Literal

from django import forms
from pydantic import SecretStr

from delivery.models import Message

WINDOW_UNITS = (("hours", "hours"), ("days", "days"))
UNIT_SECONDS = {"hours": 3600, "days": 86400}


def channel_choices(*, blank: str | None = None) -> list[tuple[str, str]]:
    from delivery.channels import channels

    found = [
        (cls.id, cls.name or cls.id) for cls in sorted(channels().values(), key=lambda c: c.id)
    ]
    return ([("", blank)] if blank is not None else []) + found


class MessageFilterForm(forms.Form):
    channel = forms.ChoiceField(required=False)
    status = forms.ChoiceField(
        required=False, choices=[("", "All statuses"), *Message.Status.choices]
    )
    journey = forms.TypedChoiceField(required=False, coerce=int, empty_value=None)
    reason = forms.ChoiceField(required=False)
    date_from = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    q = forms.CharField(required=False, max_length=254)

    def __init__(self, *args, journeys, reasons, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["channel"].choices = channel_choices(blank="All channels")
        self.fields["journey"].choices = [("", "All journeys"), *journeys]
        self.fields["reason"].choices = [("", "Any reason"), *((r, r) for r in reasons)]

    def clean(self):
        data = super().clean()
        start, end = data.get("date_from"), data.get("date_to")
        if start and end and start > end:
            self.add_error("date_to", "The end date is before the start date.")
        return data


def selected_message_ids(data) -> list[int]:
    """The message ids ticked on the dead-letter list (or the one a row's button
    names). Any id of any shape is refused here; whether each is a dead letter of the
    workspace is the service's to check."""
    raw = data.getlist("message")
    if not raw:
        raise forms.ValidationError("Choose at least one message.")
    try:
        return [int(value) for value in raw]
    except ValueError:
        raise forms.ValidationError("A chosen message id is not a number.") from None


# --------------------------------------------------------------------------- channel settings


def _unwrap_optional(annotation) -> tuple[Any, bool]:
    """(the type, whether None is allowed) of `X | None` / Optional[X]."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(args) == 1:
            return args[0], True
    return annotation, False


class JSONField(forms.CharField):
    """A textarea holding JSON (an object or a list, as the Config field wants)."""

    def __init__(self, *, kind: type, **kwargs):
        self.kind = kind
        kwargs.setdefault("widget", forms.Textarea(attrs={"rows": 4, "class": "mono"}))
        super().__init__(**kwargs)

    def prepare_value(self, value):
        if isinstance(value, dict | list):
            return json.dumps(value, indent=2)
        return value

    def to_python(self, value):
        value = super().to_python(value)
        if value in ("", None):
            return None
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError as error:
            raise forms.ValidationError(
                f"Not valid JSON: {error.msg} (line {error.lineno})."
            ) from None
        if not isinstance(parsed, self.kind):
            raise forms.ValidationError(
                f"Expected a JSON {'object' if self.kind is dict else 'list'}."
            )
        return parsed


def _config_field(name: str, info, *, stored: bool) -> forms.Field:
    annotation, optional = _unwrap_optional(info.annotation)
    label = name.replace("_", " ").capitalize()
    help_text = info.description or ""
    required = info.is_required()
    if annotation is SecretStr:
        field = forms.CharField(
            label=label,
            required=required and not stored,
            strip=False,
            widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
            help_text=help_text,
        )
        field.is_secret = True
        return field
    if annotation is bool:
        return forms.BooleanField(label=label, required=False, help_text=help_text)
    if annotation is int:
        return forms.IntegerField(label=label, required=required, help_text=help_text)
    if annotation is float:
        return forms.FloatField(label=label, required=required, help_text=help_text)
    if typing.get_origin(annotation) is Literal:
        values = typing.get_args(annotation)
        choices = [(str(value), str(value)) for value in values]
        if optional:
            choices = [("", "—"), *choices]
        # The choice comes back as text; pydantic wants the Literal's own value (1, not "1").
        return forms.TypedChoiceField(
            label=label,
            choices=choices,
            required=required,
            help_text=help_text,
            coerce=lambda text, values=values: next(v for v in values if str(v) == text),
            empty_value=None,
        )
    origin = typing.get_origin(annotation) or annotation
    if origin in (dict, list):
        return JSONField(kind=origin, label=label, required=required, help_text=help_text)
    return forms.CharField(label=label, required=required, help_text=help_text, strip=True)


class ChannelSettingsForm(forms.Form):
    """`enabled`, `rate_per_second`, then one field per Config field. Secret fields are
    never filled in from what is stored: empty keeps the saved value."""

    enabled = forms.BooleanField(required=False, initial=True, label="Enabled")
    rate_per_second = forms.IntegerField(
        required=False,
        min_value=1,
        label="Rate per second",
        help_text="How many messages per second this workspace may send here; empty for no limit.",
    )
    cost_per_message = forms.DecimalField(
        required=False,
        min_value=0,
        max_digits=10,
        decimal_places=5,
        label="Cost per message",
        help_text="What the provider charges per message (e.g. 0.0079), for the channel "
        "report's costs; empty if unknown.",
    )

    def __init__(self, *args, channel_class, row=None, **kwargs):
        self.channel_class = channel_class
        self.secret_names = set(channel_class.Config.secret_fields())
        self.saved_secrets: set[str] = set()
        if row is not None:
            from engagement_site.crypto import SecretsUnreadable, decrypt_json

            try:
                self.saved_secrets = {k for k, v in decrypt_json(row.secrets).items() if v}
            except SecretsUnreadable:
                self.saved_secrets = set()
        initial = kwargs.pop("initial", None) or {}
        if row is not None:
            initial = {
                "enabled": row.enabled,
                "rate_per_second": row.rate_per_second,
                "cost_per_message": row.cost_per_message,
                **{k: v for k, v in (row.config or {}).items() if k not in self.secret_names},
            }
        else:
            initial = {
                "enabled": True,
                **{
                    name: info.default
                    for name, info in channel_class.Config.model_fields.items()
                    if name not in self.secret_names and not info.is_required()
                },
            }
        super().__init__(*args, initial=initial, **kwargs)
        self.config_names = list(channel_class.Config.model_fields)
        for name, info in channel_class.Config.model_fields.items():
            self.fields[name] = _config_field(name, info, stored=name in self.saved_secrets)

    def config_fields(self):
        for name in self.config_names:
            bound = self[name]
            bound.is_secret = name in self.secret_names
            bound.is_saved = name in self.saved_secrets
            yield bound

    def config(self) -> dict[str, Any]:
        """The Config fields as entered, for channel_settings_save (an empty secret
        stays empty: the service keeps the stored one)."""
        values = {}
        for name in self.config_names:
            value = self.cleaned_data.get(name)
            if name in self.secret_names:
                values[name] = value or ""
            elif value is None or value == "":
                info = self.channel_class.Config.model_fields[name]
                if info.is_required():
                    values[name] = value
                # an optional field left empty takes its default
            else:
                values[name] = value
        return values

    def add_pydantic_errors(self, error) -> None:
        """Put each of pydantic's errors on the field it names (or on the form)."""
        for item in error.errors():
            location = item.get("loc") or ()
            name = str(location[0]) if location else ""
            message = item.get("msg", "Invalid value")
            if name in self.fields:
                self.add_error(name, message)
            else:
                where = ".".join(str(part) for part in location)
                self.add_error(None, f"{where}: {message}" if where else message)


# --------------------------------------------------------------------------- delivery tab


class DeliverySettingsForm(forms.Form):
    track_opens = forms.BooleanField(required=False, label="Track opens")
    track_clicks = forms.BooleanField(required=False, label="Track clicks")
    utm_domains = forms.CharField(
        required=False,
        label="UTM domains",
        widget=forms.Textarea(attrs={"rows": 3, "class": "mono", "spellcheck": "false"}),
        help_text="One host per line (or comma separated); their subdomains count too.",
    )
    utm_source = forms.CharField(max_length=100, label="UTM source")
    shadow_mode = forms.BooleanField(required=False, label="Shadow mode")
    quiet_hours_start = forms.TimeField(
        required=False, label="Quiet hours start", widget=forms.TimeInput(attrs={"type": "time"})
    )
    quiet_hours_end = forms.TimeField(
        required=False, label="Quiet hours end", widget=forms.TimeInput(attrs={"type": "time"})
    )
    quiet_hours_channels = forms.MultipleChoiceField(
        required=False, label="Quiet hours channels", widget=forms.CheckboxSelectMultiple
    )
    fallback_time_zone = forms.CharField(max_length=64, label="Fallback time zone")
    opt_in_channels = forms.MultipleChoiceField(
        required=False,
        label="Channels that need a yes",
        widget=forms.CheckboxSelectMultiple,
        help_text="Marketing on these goes only to people who subscribed (SMS in the US, say).",
    )
    email_double_opt_in = forms.BooleanField(
        required=False,
        label="Double opt-in for email",
        help_text="Marketing email only to people who confirmed by clicking the link we send them.",
    )
    opt_in_template_id = forms.TypedChoiceField(
        required=False,
        coerce=int,
        empty_value=None,
        label="Confirmation email",
        help_text="An email template with {{ message.confirm_url }}; one is made on first use.",
    )

    def __init__(self, *args, workspace=None, **kwargs):
        from content.models import Template

        super().__init__(*args, **kwargs)
        known = dict(channel_choices())
        for channel in ("sms", "whatsapp", "push", "web_push", "in_app"):
            known.setdefault(channel, channel.replace("_", " "))
        self.fields["quiet_hours_channels"].choices = sorted(known.items())
        self.fields["opt_in_channels"].choices = sorted(known.items())
        templates = Template.objects.filter(workspace=workspace, channel="email").order_by("name")
        self.fields["opt_in_template_id"].choices = [
            ("", "The default (made on first use)"),
            *templates.values_list("pk", "name"),
        ]

    @classmethod
    def for_settings(cls, row, data=None):
        return cls(
            data,
            workspace=row.workspace,
            initial={
                "opt_in_channels": list(row.opt_in_channels),
                "email_double_opt_in": row.email_double_opt_in,
                "opt_in_template_id": row.opt_in_template_id,
                "track_opens": row.track_opens,
                "track_clicks": row.track_clicks,
                "utm_domains": "\n".join(row.utm_domains),
                "utm_source": row.utm_source,
                "shadow_mode": row.shadow_mode,
                "quiet_hours_start": row.quiet_hours_start,
                "quiet_hours_end": row.quiet_hours_end,
                "quiet_hours_channels": list(row.quiet_hours_channels),
                "fallback_time_zone": row.fallback_time_zone,
            },
        )

    def clean_utm_domains(self):
        raw = self.cleaned_data["utm_domains"].replace(",", "\n")
        domains = []
        for line in raw.splitlines():
            host = line.strip().lower().removeprefix("https://").removeprefix("http://").rstrip("/")
            if not host:
                continue
            if "/" in host or " " in host or "." not in host or len(host) > 253:
                raise forms.ValidationError(
                    f"{line.strip()!r} is not a host name such as shop.example.com."
                )
            if host not in domains:
                domains.append(host)
        return domains

    def clean_fallback_time_zone(self):
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        value = self.cleaned_data["fallback_time_zone"].strip()
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise forms.ValidationError(
                f"{value!r} is not a time zone; use an IANA name such as Europe/Berlin or UTC."
            ) from None
        return value

    def clean(self):
        data = super().clean()
        start, end = data.get("quiet_hours_start"), data.get("quiet_hours_end")
        if (start is None) != (end is None) and "quiet_hours_start" not in self.errors:
            self.add_error(
                "quiet_hours_end" if start else "quiet_hours_start",
                "Quiet hours need both a start and an end (or neither).",
            )
        elif start is not None and start == end:
            self.add_error("quiet_hours_end", "Quiet hours cannot start and end at the same time.")
        return data


class FrequencyCapForm(forms.Form):
    channel = forms.ChoiceField(required=False, label="Channel")
    limit = forms.IntegerField(min_value=1, max_value=10000, label="At most")
    window = forms.IntegerField(min_value=1, max_value=365, label="In")
    unit = forms.ChoiceField(choices=WINDOW_UNITS, label="Unit")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["channel"].choices = channel_choices(blank="All channels")

    @property
    def window_seconds(self) -> int:
        return self.cleaned_data["window"] * UNIT_SECONDS[self.cleaned_data["unit"]]


class SuppressionAddForm(forms.Form):
    channel = forms.ChoiceField(label="Channel")
    address = forms.CharField(max_length=254, label="Address")
    note = forms.CharField(max_length=500, required=False, label="Note")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        known = dict(channel_choices())
        for channel in ("sms", "whatsapp"):
            known.setdefault(channel, channel.upper() if channel == "sms" else "WhatsApp")
        self.fields["channel"].choices = sorted(known.items())
