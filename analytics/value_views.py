"""The customer value report page: tiers, LTV distribution, top customers and a
strategy per tier, with the settings form (analytics.edit), "Recompute now"
(analytics.edit) and the Markdown / JSON downloads (analytics.export, audited)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from analytics.charts import Chart, Series, charts_csv_response
from analytics.value import (
    SETTINGS_FIELDS,
    TOUCHPOINTS,
    customer_value_enqueue,
    customer_value_recompute_request,
    value_report,
    value_report_export_record,
    value_report_json,
    value_report_markdown,
    value_settings_get,
    value_settings_update,
)
from engagement_site.workspaces.access import member_can, workspace_view
from engagement_site.workspaces.services import AuditContext

TOUCHPOINT_HELP = {
    "email": "opens and clicks of their email messages, plus these events",
    "web": "page calls, plus these events",
    "mobile": "screen calls, plus these events",
}


def _names(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    too_long = [name for name in names if len(name) > 200]
    if too_long:
        raise forms.ValidationError(f"{too_long[0][:40]}… is longer than 200 characters.")
    return list(dict.fromkeys(names))


class ValueSettingsForm(forms.Form):
    discount_rate = forms.DecimalField(
        min_value=Decimal("0"), max_value=Decimal("1"), decimal_places=4,
        help_text="A year, e.g. 0.1 for 10%.",
    )  # fmt: skip
    lifespan_years = forms.DecimalField(
        min_value=Decimal("0.1"), max_value=Decimal("100"), decimal_places=2,
        help_text="How long a customer stays, on average.",
    )  # fmt: skip
    revenue_events = forms.CharField(max_length=2000, help_text="Event names, comma-separated.")
    revenue_properties = forms.CharField(
        max_length=2000, help_text="Properties holding the amount, first found wins."
    )
    engagement_window_days = forms.IntegerField(min_value=1, max_value=3650)
    high_ltv = forms.DecimalField(min_value=Decimal("0"), max_digits=14, decimal_places=2)
    medium_ltv = forms.DecimalField(min_value=Decimal("0"), max_digits=14, decimal_places=2)
    high_engagement = forms.DecimalField(
        min_value=Decimal("0"), max_value=Decimal("100"), decimal_places=1
    )
    at_risk_days = forms.IntegerField(min_value=1, max_value=3650)
    lost_days = forms.IntegerField(min_value=1, max_value=3650)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for touchpoint in TOUCHPOINTS:
            self.fields[f"events_{touchpoint}"] = forms.CharField(
                required=False, max_length=2000,
                help_text=TOUCHPOINT_HELP.get(touchpoint, "event names, comma-separated"),
            )  # fmt: skip
            self.fields[f"weight_{touchpoint}"] = forms.DecimalField(
                min_value=Decimal("0"), max_value=Decimal("100"), decimal_places=2
            )

    @classmethod
    def initial_of(cls, settings) -> dict[str, Any]:
        initial: dict[str, Any] = {name: getattr(settings, name) for name in SETTINGS_FIELDS}
        initial["revenue_events"] = ", ".join(settings.revenue_events)
        initial["revenue_properties"] = ", ".join(settings.revenue_properties)
        for touchpoint in TOUCHPOINTS:
            initial[f"events_{touchpoint}"] = ", ".join(
                settings.touchpoint_events.get(touchpoint, [])
            )
            initial[f"weight_{touchpoint}"] = settings.touchpoint_weights.get(touchpoint, 0)
        return initial

    def clean_revenue_events(self) -> list[str]:
        names = _names(self.cleaned_data["revenue_events"])
        if not names:
            raise forms.ValidationError("Name at least one revenue event.")
        return names

    def clean_revenue_properties(self) -> list[str]:
        names = _names(self.cleaned_data["revenue_properties"])
        if not names:
            raise forms.ValidationError("Name at least one revenue property.")
        return names

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        for touchpoint in TOUCHPOINTS:
            try:
                data[f"events_{touchpoint}"] = _names(data.get(f"events_{touchpoint}") or "")
            except forms.ValidationError as error:
                self.add_error(f"events_{touchpoint}", error)
        weights = [data.get(f"weight_{touchpoint}") for touchpoint in TOUCHPOINTS]
        if all(weight is not None for weight in weights) and not any(weights):
            raise forms.ValidationError("At least one touchpoint needs a weight above 0.")
        high, medium = data.get("high_ltv"), data.get("medium_ltv")
        if high is not None and medium is not None and medium > high:
            self.add_error("medium_ltv", "The medium LTV must not be above the high LTV.")
        at_risk, lost = data.get("at_risk_days"), data.get("lost_days")
        if at_risk is not None and lost is not None and at_risk >= lost:
            self.add_error("lost_days", "Lost must come after at risk (more days).")
        return data

    def values(self) -> dict[str, Any]:
        data = self.cleaned_data
        values = {
            name: data[name]
            for name in SETTINGS_FIELDS
            if name not in ("touchpoint_events", "touchpoint_weights")
        }
        values["touchpoint_events"] = {t: data[f"events_{t}"] for t in TOUCHPOINTS}
        values["touchpoint_weights"] = {t: float(data[f"weight_{t}"]) for t in TOUCHPOINTS}
        return values

    def touchpoint_rows(self) -> list[tuple[str, Any, Any]]:
        return [(t, self[f"events_{t}"], self[f"weight_{t}"]) for t in TOUCHPOINTS]


def _charts(report: dict[str, Any]) -> list[Chart]:
    labels = [row["label"] for row in report["tiers"]]
    return [
        Chart(
            key="tiers", title="People per tier", kind="doughnut", labels=labels,
            series=[Series("People", [row["people"] for row in report["tiers"]])],
            x_label="Tier",
        ),
        Chart(
            key="tier-revenue", title="Revenue per tier", kind="bar", labels=labels,
            series=[Series("Revenue", [row["revenue"] for row in report["tiers"]])],
            unit="money", x_label="Tier",
        ),
        Chart(
            key="ltv", title="LTV distribution", kind="bar",
            labels=[row["bucket"] for row in report["ltv_histogram"]],
            series=[Series("People", [row["people"] for row in report["ltv_histogram"]])],
            x_label="LTV",
        ),
    ]  # fmt: skip


def _download(request: HttpRequest, report: dict[str, Any], export_format: str) -> HttpResponse:
    if not member_can(request, "analytics.export"):
        raise PermissionDenied("Your role cannot export analytics: analytics.export")
    value_report_export_record(
        workspace=request.workspace,
        export_format=export_format,
        context=AuditContext.from_request(request),
    )
    if export_format == "md":
        body, content_type = value_report_markdown(report), "text/markdown; charset=utf-8"
    else:
        body, content_type = value_report_json(report), "application/json"
    response = HttpResponse(body, content_type=content_type)
    filename = f"{request.workspace.slug}-customer-value.{export_format}"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@workspace_view({"GET": "analytics.view", "POST": "analytics.edit"})
def analytics_value(request: HttpRequest) -> HttpResponse:
    workspace = request.workspace
    settings = value_settings_get(workspace=workspace)
    form = ValueSettingsForm(initial=ValueSettingsForm.initial_of(settings))
    status = 200
    if request.method == "POST":
        if request.POST.get("action") == "recompute":
            if customer_value_recompute_request(
                workspace=workspace, context=AuditContext.from_request(request)
            ):
                messages.success(request, "Recomputing customer values; reload in a moment.")
            else:
                messages.info(request, "A recompute is already queued or running.")
            return redirect("analytics_value", workspace_slug=workspace.slug)
        form = ValueSettingsForm(request.POST)
        if form.is_valid():
            value_settings_update(
                workspace=workspace,
                values=form.values(),
                context=AuditContext.from_request(request),
            )
            customer_value_enqueue(workspace=workspace)
            messages.success(request, "Settings saved; the values are being recomputed.")
            return redirect("analytics_value", workspace_slug=workspace.slug)
        status = 400
    report = value_report(workspace=workspace)
    export_format = request.GET.get("download")
    if export_format in ("md", "json"):
        return _download(request, report, export_format)
    charts = _charts(report)
    csv = charts_csv_response(request, charts, filename=f"{workspace.slug}-customer-value")
    if csv is not None:
        return csv
    return render(
        request,
        "analytics/value.html",
        {
            "area": "analytics",
            "tab": "value",
            "report": report,
            "charts": charts,
            "form": form,
            "settings": settings,
            "can_edit": member_can(request, "analytics.edit"),
            "can_export": member_can(request, "analytics.export"),
        },
        status=status,
    )
