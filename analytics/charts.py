"""Charts of the analytics pages: one description serves the Chart.js chart, the table
view beside it and its CSV download, so the three always show the same numbers.

A view builds its `Chart`s, answers `charts_csv_response(request, charts, ...)` when it
is not None (the page's `?csv=<key>` link, under the page's current filters), and hands
the charts to its template, which includes `analytics/_chart.html` for each."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from decimal import Decimal

from django.http import Http404, HttpRequest, StreamingHttpResponse
from django.utils.text import slugify

from engagement_site.streaming import Echo, streamed

KINDS = ("line", "bar", "hbar", "stacked", "doughnut")
UNITS = ("", "%", "money")


@dataclass
class Series:
    name: str
    values: list
    # "right": drawn against a second axis (revenue beside counts, say).
    axis: str = "left"


@dataclass
class Chart:
    key: str
    title: str
    kind: str
    labels: list[str]
    series: list[Series]
    unit: str = ""
    x_label: str = ""
    description: str = ""
    csv_href: str = field(default="", init=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown chart kind {self.kind!r}")
        if self.unit not in UNITS:
            raise ValueError(f"unknown chart unit {self.unit!r}")
        for series in self.series:
            if len(series.values) != len(self.labels):
                raise ValueError(
                    f"series {series.name!r} of chart {self.key!r} has "
                    f"{len(series.values)} values for {len(self.labels)} labels"
                )

    @property
    def dom_id(self) -> str:
        return f"chart-{self.key}"

    @property
    def is_empty(self) -> bool:
        return not any(value for series in self.series for value in series.values)

    def header(self) -> list[str]:
        return [self.x_label or "", *(series.name for series in self.series)]

    def rows(self) -> list[list]:
        """The table view: one row per label, one column per series."""
        return [
            [label, *(series.values[index] for series in self.series)]
            for index, label in enumerate(self.labels)
        ]

    def data(self) -> dict:
        """What the browser module (static/js/analytics/charts.js) draws."""
        return {
            "key": self.key,
            "kind": self.kind,
            "unit": self.unit,
            "labels": self.labels,
            "series": [
                {
                    "name": series.name,
                    "values": [_plain(value) for value in series.values],
                    "axis": series.axis,
                }
                for series in self.series
            ],
        }


def _plain(value):
    return float(value) if isinstance(value, Decimal) else value


# A spreadsheet runs a cell that starts with one of these as a formula; labels can be
# people's data (a breakdown's trait values), so such text gets a leading apostrophe.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value):
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return f"'{value}"
    return value


def chart_csv_rows(chart: Chart):
    writer = csv.writer(Echo())
    yield writer.writerow([_cell(value) for value in chart.header()])
    for row in chart.rows():
        yield writer.writerow([_cell(value) for value in row])


def charts_csv_response(
    request: HttpRequest, charts: list[Chart], *, filename: str
) -> StreamingHttpResponse | None:
    """The CSV of the chart named by `?csv=` (404 for a name the page does not
    have), else None. Sets every chart's `csv_href`
    (the page's query string plus its key), so the download has the page's filters."""
    for chart in charts:
        query = request.GET.copy()
        query["csv"] = chart.key
        chart.csv_href = f"?{query.urlencode()}"
    wanted = request.GET.get("csv")
    if not wanted:
        return None
    chart = next((chart for chart in charts if chart.key == wanted), None)
    if chart is None:
        raise Http404(f"This page has no chart {wanted!r}.")
    response = StreamingHttpResponse(
        streamed(chart_csv_rows(chart), request), content_type="text/csv"
    )
    name = slugify(f"{filename}-{chart.key}")
    response["Content-Disposition"] = f'attachment; filename="{name}.csv"'
    return response
