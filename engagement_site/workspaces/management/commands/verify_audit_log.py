"""Walk every audit chain and report rows that were changed, removed or inserted."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from engagement_site.workspaces.models import AuditLog, Workspace
from engagement_site.workspaces.selectors import workspace_by_slug
from engagement_site.workspaces.services import audit_log_verify


class Command(BaseCommand):
    help = "Verify the audit log's hash chains; exits non-zero when a chain is broken."

    def add_arguments(self, parser):
        parser.add_argument("--workspace", help="Only this workspace's chain (slug)")

    def handle(self, *args, workspace: str | None, **options):
        if workspace:
            try:
                breaks = audit_log_verify(workspace=workspace_by_slug(slug=workspace))
            except Workspace.DoesNotExist as error:
                raise CommandError(str(error)) from None
        else:
            breaks = audit_log_verify(all_chains=True)
        total = AuditLog.objects.count()
        if not breaks:
            self.stdout.write(
                self.style.SUCCESS(f"Audit log intact: {total} rows, every chain verified.")
            )
            return
        for item in breaks:
            chain = f"workspace {item.workspace_id}" if item.workspace_id else "global chain"
            self.stderr.write(
                f"BROKEN {chain} sequence {item.sequence} (row {item.audit_log_id}): {item.problem}"
            )
        raise CommandError(f"{len(breaks)} break(s) in the audit log")
