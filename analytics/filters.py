"""The date range and filters every analytics page takes from its query string.

Days are the workspace's (its time zone), the range includes both ends, and a bad
value is reported next to its field while the page shows the default range."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django import forms
from django.utils import timezone

from delivery.channels import channels
from engagement_site.workspaces.models import Workspace

DEFAULT_DAYS = 30
MAX_DAYS = 366


def workspace_today(workspace: Workspace) -> date:
    return timezone.now().astimezone(ZoneInfo(workspace.time_zone or "UTC")).date()


@dataclass(frozen=True)
class DateRange:
    start: date
    end: date
    zone: ZoneInfo

    @property
    def days(self) -> list[date]:
        return [self.start + timedelta(days=n) for n in range((self.end - self.start).days + 1)]

    @property
    def starts_at(self) -> datetime:
        """The first instant of the first day, in the workspace's zone."""
        return datetime.combine(self.start, time.min, tzinfo=self.zone)

    @property
    def ends_before(self) -> datetime:
        """The first instant after the last day."""
        return datetime.combine(self.end + timedelta(days=1), time.min, tzinfo=self.zone)


def date_range_of(*, workspace: Workspace, start: date | None, end: date | None) -> DateRange:
    """The range from `start` to `end` in the workspace's zone: without an end, DEFAULT_DAYS
    from the start or up to today; without a start, DEFAULT_DAYS up to the end."""
    if end is None:
        end = start + timedelta(days=DEFAULT_DAYS - 1) if start else workspace_today(workspace)
    if start is None:
        start = end - timedelta(days=DEFAULT_DAYS - 1)
    return DateRange(start=start, end=end, zone=ZoneInfo(workspace.time_zone or "UTC"))


class ReportFilters(forms.Form):
    start = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    channel = forms.ChoiceField(required=False)
    journey = forms.IntegerField(required=False, min_value=1, widget=forms.Select)

    def __init__(self, data=None, *, workspace: Workspace, journeys=(), **kwargs):
        super().__init__(data, **kwargs)
        self.workspace = workspace
        self.fields["channel"].choices = [("", "All channels")] + [
            (key, cls.name or key.replace("_", " ").title()) for key, cls in channels().items()
        ]
        self.fields["journey"].widget.choices = [("", "All journeys")] + [
            (journey.pk, journey.name) for journey in journeys
        ]

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("start"), cleaned.get("end")
        if start and end and start > end:
            self.add_error("end", "The end comes before the start.")
        elif start and end and (end - start).days + 1 > MAX_DAYS:
            self.add_error("end", f"A range covers at most {MAX_DAYS} days.")
        return cleaned

    def date_range(self) -> DateRange:
        """The chosen range, or the last DEFAULT_DAYS days up to today (one end given:
        DEFAULT_DAYS from it); the default when the form is not valid."""
        cleaned = self.cleaned_data if self.is_bound and self.is_valid() else {}
        return date_range_of(
            workspace=self.workspace, start=cleaned.get("start"), end=cleaned.get("end")
        )

    def value(self, name: str):
        return (self.cleaned_data.get(name) or None) if self.is_bound and self.is_valid() else None
