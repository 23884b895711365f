"""Write a workspace's warehouse export files for a range of finished UTC days."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from analytics.exports import (
    FORMATS,
    TABLE_NAMES,
    ExportRefused,
    day_parse,
    last_finished_day,
    warehouse_export,
)
from engagement_site.workspaces.models import Workspace
from engagement_site.workspaces.services import AuditContext


class Command(BaseCommand):
    help = (
        "Export a workspace's messages, message events and events to "
        "<out>/<slug>/<table>/date=YYYY-MM-DD/part-00000.<format>, one file per UTC day "
        "(replacing what was there). Days default to the last finished one."
    )

    def add_arguments(self, parser):
        parser.add_argument("--workspace", required=True, help="the workspace's slug")
        parser.add_argument("--table", default="all", help=f"{' | '.join(TABLE_NAMES)} | all")
        parser.add_argument(
            "--format",
            dest="file_format",
            metavar="FORMAT",
            default=None,
            help=f"{' | '.join(FORMATS)} (default: WAREHOUSE_EXPORT_FORMAT)",
        )
        parser.add_argument("--since", help="first UTC day, YYYY-MM-DD")
        parser.add_argument("--until", help="last UTC day, YYYY-MM-DD (default: --since)")
        parser.add_argument("--out", help="root directory (default: WAREHOUSE_EXPORT_DIR)")

    def handle(
        self,
        *args,
        workspace: str,
        table: str,
        file_format: str | None,
        since: str | None,
        until: str | None,
        out: str | None,
        **options,
    ):
        found = Workspace.objects.filter(slug=workspace).first()
        if found is None:
            raise CommandError(f"--workspace: no workspace {workspace!r}.")
        root = out or settings.WAREHOUSE_EXPORT_DIR
        if not root:
            raise CommandError("--out: give a directory (WAREHOUSE_EXPORT_DIR is not set).")
        tables = list(TABLE_NAMES) if table == "all" else [table]
        try:
            first = day_parse("since", since) if since else None
            last = day_parse("until", until) if until else None
            first = first or last or last_finished_day(now=timezone.now())
            last = last or first
            written = warehouse_export(
                workspace=found,
                tables=tables,
                since=first,
                until=last,
                file_format=file_format or settings.WAREHOUSE_EXPORT_FORMAT,
                root=root,
                context=AuditContext.system("manage.py export_warehouse"),
            )
        except ExportRefused as refusal:
            raise CommandError(f"--{refusal.field}: {refusal}") from None
        for partition in written:
            self.stdout.write(f"{partition.path}: {partition.rows} rows")
        self.stdout.write(
            f"{found.slug}: {len(written)} partitions, "
            f"{sum(partition.rows for partition in written)} rows"
        )
