"""The demo workspace: slug `demo`, an owner login, and a generated dataset."""

from __future__ import annotations

import json
import os
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction

from engagement_site.workspaces.models import Workspace
from engagement_site.workspaces.services import AuditContext, workspace_create

DEMO_WORKSPACE_SLUG = "demo"
DEMO_USERNAME = "demo@example.com"


def _credentials_file():
    return settings.VAR_DIR / "demo-login.json"


def demo_workspace_exists() -> bool:
    return Workspace.objects.filter(slug=DEMO_WORKSPACE_SLUG).exists()


def demo_credentials() -> dict[str, str] | None:
    path = _credentials_file()
    if not path.exists():
        return None
    return json.loads(path.read_text())


@transaction.atomic
def demo_owner_and_workspace() -> tuple[Workspace, str]:
    """Create the owner (staff + superuser: the demo owner is also the admin) and the
    workspace. The password comes from DEMO_PASSWORD or is generated, and is written
    to ./var/demo-login.json so `make run` can print it on every start."""
    password = os.environ.get("DEMO_PASSWORD") or secrets.token_urlsafe(9)
    user_model = get_user_model()
    user, _ = user_model.objects.get_or_create(
        username=DEMO_USERNAME,
        defaults={
            "email": DEMO_USERNAME,
            "first_name": "Dana",
            "last_name": "Demo",
            "is_staff": True,
            "is_superuser": True,
        },
    )
    user.set_password(password)
    user.save(update_fields=["password"])
    workspace = Workspace.objects.filter(slug=DEMO_WORKSPACE_SLUG).first()
    if workspace is None:
        workspace = workspace_create(
            name="Demo Shop",
            slug=DEMO_WORKSPACE_SLUG,
            owner=user,
            time_zone="Europe/Berlin",
            default_locale="en",
            context=AuditContext.system("manage.py load_demo"),
        )
    path = _credentials_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"username": DEMO_USERNAME, "password": password}))
    path.chmod(0o600)
    return workspace, password
