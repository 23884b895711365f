"""Recompute the message counters from the message events (one workspace, or all)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from analytics.services import metrics_rebuild
from engagement_site.workspaces.models import Workspace


class Command(BaseCommand):
    help = "Rebuild the message counters of a workspace (--workspace SLUG) or of every one."

    def add_arguments(self, parser):
        parser.add_argument("--workspace", help="the workspace's slug (default: all)")

    def handle(self, *args, workspace: str | None = None, **options):
        workspaces = Workspace.objects.order_by("pk")
        if workspace:
            workspaces = workspaces.filter(slug=workspace)
            if not workspaces.exists():
                raise CommandError(f"No workspace {workspace!r}.")
        for each in workspaces:
            rows = metrics_rebuild(workspace=each)
            self.stdout.write(f"{each.slug}: {rows} counter rows")
