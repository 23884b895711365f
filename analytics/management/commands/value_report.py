"""Print a workspace's customer value report as Markdown tables or JSON."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from analytics.value import (
    customer_value_recompute,
    value_report,
    value_report_json,
    value_report_markdown,
)
from engagement_site.workspaces.models import Workspace


class Command(BaseCommand):
    help = "Print the customer value report (tiers, LTV distribution, top customers, strategies)."

    def add_arguments(self, parser):
        parser.add_argument("--workspace", required=True, help="The workspace's slug.")
        parser.add_argument("--format", choices=("md", "json"), default="md")
        parser.add_argument("--recompute", action="store_true", help="Recompute the values first.")

    def handle(self, *args, workspace: str, format: str, recompute: bool, **options):
        found = Workspace.objects.filter(slug=workspace).first()
        if found is None:
            raise CommandError(f"No workspace with the slug {workspace!r}.")
        if recompute:
            # The values and the segments that read them, as the scheduled job does.
            customer_value_recompute(workspace=found)
        report = value_report(workspace=found)
        text = value_report_markdown(report) if format == "md" else value_report_json(report)
        self.stdout.write(text, ending="")
