"""Print a new API key for a workspace (operators and scripts)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from engagement_site.workspaces.models import ApiKey, Workspace
from engagement_site.workspaces.roles import Role
from engagement_site.workspaces.selectors import workspace_by_slug
from engagement_site.workspaces.services import AuditContext, api_key_create


class Command(BaseCommand):
    help = "Create an API key and print it (secret keys are shown only here)."

    def add_arguments(self, parser):
        parser.add_argument("--workspace", required=True, help="Workspace slug, e.g. demo")
        parser.add_argument("--kind", required=True, choices=ApiKey.Kind.values)
        parser.add_argument(
            "--role", choices=Role.values, help="Secret keys only (default: viewer)"
        )
        parser.add_argument("--name", default="", help="Where the key is used")

    def handle(self, *args, workspace: str, kind: str, role: str | None, name: str, **options):
        try:
            target = workspace_by_slug(slug=workspace)
        except Workspace.DoesNotExist as error:
            raise CommandError(str(error)) from None
        try:
            _, raw_key = api_key_create(
                workspace=target,
                kind=kind,
                role=role or "",
                name=name or f"{kind} key (command line)",
                context=AuditContext.system("manage.py create_api_key"),
            )
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from None
        self.stdout.write(raw_key)
