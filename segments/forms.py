"""Forms and input validation of the segments app, shared by the HTML views, the
admin and the REST API serializers."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from segments.models import EventSchema
from segments.selectors import TimeCursor

SCHEMA_PROPERTY_KEYS = ("type", "required")
SCHEMA_EXAMPLE = '{"plan": {"type": "string", "required": true}}'


def event_schema_properties_errors(properties: Any) -> dict[str, list[str]]:
    """What is wrong with an event schema's `properties`, by property name (empty when
    it is valid). Each message names its property, so a list of them reads on its own.

    A valid schema maps each property name to {"type": one of EventSchema.PropertyType,
    "required": true or false (optional, false by default)}."""
    if not isinstance(properties, dict):
        return {"properties": [f"Give the properties as an object, such as {SCHEMA_EXAMPLE}."]}
    types = ", ".join(EventSchema.PropertyType.values)
    errors: dict[str, list[str]] = {}
    for name, spec in properties.items():
        problems: list[str] = []
        if not name.strip():
            problems.append("A property name cannot be blank.")
        elif not isinstance(spec, dict):
            problems.append(
                f'Property "{name}": give an object such as {{"type": "string", "required": true}}.'
            )
        else:
            if "type" not in spec:
                problems.append(f'Property "{name}": "type" is missing; use one of {types}.')
            elif spec["type"] not in EventSchema.PropertyType.values:
                problems.append(
                    f'Property "{name}": type {_shown(spec["type"])} is not one of {types}.'
                )
            if "required" in spec and not isinstance(spec["required"], bool):
                problems.append(f'Property "{name}": "required" must be true or false.')
            for key in spec:
                if key not in SCHEMA_PROPERTY_KEYS:
                    problems.append(
                        f'Property "{name}": unknown key {_shown(key)}; a property takes only "type" and "required".'
                    )
        if problems:
            errors[name] = problems
    return errors


def _shown(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)


class EventSchemaAdminForm(forms.ModelForm):
    """The admin's event schema form, with the same validation as the API."""

    class Meta:
        model = EventSchema
        fields = ["workspace", "event_name", "properties", "allow_additional_properties"]

    def clean_properties(self) -> Any:
        properties = self.cleaned_data["properties"]
        errors = event_schema_properties_errors(properties)
        if errors:
            raise ValidationError([message for messages in errors.values() for message in messages])
        return properties


class TimelineFilterForm(forms.Form):
    """The profile page's event timeline: an event name, and the position to continue
    from (infinite scroll). A bad cursor restarts from the newest event."""

    name = forms.CharField(required=False, max_length=200)
    after = forms.CharField(required=False, max_length=200)

    def clean_after(self) -> TimeCursor | None:
        text = self.cleaned_data["after"]
        return TimeCursor.decode(text) if text else None

    @property
    def event_name(self) -> str:
        return self.cleaned_data.get("name", "") if self.is_valid() else ""

    @property
    def cursor(self) -> TimeCursor | None:
        return self.cleaned_data.get("after") if self.is_valid() else None
