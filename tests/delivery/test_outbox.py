"""The development mail server keeps what journeys send, and the outbox page shows a
workspace only its own mail."""

from __future__ import annotations

import pytest
from aiosmtpd.controller import Controller
from django.urls import reverse

from delivery.devmail import OutboxHandler
from journeys import services
from segments.models import Profile
from tests.conftest import logged_in
from tests.delivery.test_email import _work
from tests.journeys.test_executor import EDITOR
from tests.servers import free_port

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def dev_smtp(settings, tmp_path):
    port = free_port()
    settings.DEV_OUTBOX_DIR = tmp_path / "outbox"
    controller = Controller(OutboxHandler(settings.DEV_OUTBOX_DIR), hostname="127.0.0.1", port=port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    yield settings.DEV_OUTBOX_DIR
    controller.stop()


def test_the_outbox_shows_the_workspaces_mail_and_only_its_own(
    workspace,
    weekly,
    dev_smtp,
    owner,
    outsider,
    other_workspace,
    settings,
):
    ada = Profile.objects.create(
        workspace=workspace, user_id="ada", email="ada@example.com", traits={"first_name": "Ada"}
    )
    services.journey_enroll(journey=weekly, profile_id=ada.pk, context=EDITOR)
    _work()
    assert len(list(dev_smtp.glob("*.eml"))) == 1
    page = logged_in(owner).get(reverse("delivery_outbox", kwargs={"workspace_slug": "acme"}))
    html = page.content.decode()
    assert page.status_code == 200
    assert html.count('class="outbox-item') == 1
    assert "Hello Ada" in html and "List-Unsubscribe-Post" in html
    assert "OutboxMessage(" not in html  # not mistaken for the notices of the messages framework
    assert 'sandbox srcdoc="&lt;' in html  # the body, escaped into a sandboxed frame
    # The outsider's own workspace has its own (empty) outbox; ours answers them 404.
    theirs = logged_in(outsider).get(
        reverse("delivery_outbox", kwargs={"workspace_slug": other_workspace.slug})
    )
    assert theirs.status_code == 200 and "Hello Ada" not in theirs.content.decode()
    assert "No mail yet" in theirs.content.decode()
    foreign = logged_in(outsider).get(reverse("delivery_outbox", kwargs={"workspace_slug": "acme"}))
    assert foreign.status_code == 404
    settings.DEV_OUTBOX_ENABLED = False
    assert (
        logged_in(owner)
        .get(reverse("delivery_outbox", kwargs={"workspace_slug": "acme"}))
        .status_code
        == 404
    )
