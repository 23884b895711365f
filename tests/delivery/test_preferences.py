"""The preference centre: a signed link per person (no login) to choose channels and
topics; what they choose is what the send-time checks read."""

from __future__ import annotations

import pytest
from django.test import Client

from delivery.models import Consent, Device, Topic
from delivery.tokens import preferences_token, preferences_url
from engagement_site.workspaces.models import AuditLog
from segments.models import Profile

pytestmark = pytest.mark.django_db


@pytest.fixture
def ada(workspace) -> Profile:
    profile = Profile.objects.create(
        workspace=workspace, user_id="ada", email="ada@example.com", phone="+4915112345678"
    )
    Topic.objects.create(workspace=workspace, key="news", name="News", description="Monthly")
    Topic.objects.create(workspace=workspace, key="beta", name="Beta", opt_in=True)
    return profile


def _page(profile) -> str:
    return f"/p/{preferences_token(profile.pk)}/"


def test_the_page_shows_reachable_channels_and_topics_with_defaults(ada, settings):
    assert preferences_url(ada.pk) == f"{settings.PUBLIC_URL}{_page(ada)}"
    response = Client().get(_page(ada))
    assert response.status_code == 200
    page = response.content.decode()
    assert 'name="channel:email" checked' in page
    assert 'name="channel:sms" checked' in page
    assert 'name="channel:whatsapp" checked' in page
    assert "channel:push" not in page  # no app installed
    assert 'name="topic:news" checked' in page
    assert 'name="topic:beta">' in page  # opt-in: off until they say yes
    Device.objects.create(workspace=ada.workspace, profile=ada, kind="fcm", token="t")
    assert 'name="channel:push" checked' in Client().get(_page(ada)).content.decode()


def test_saving_writes_only_the_changes_and_is_audited(ada):
    client = Client(enforce_csrf_checks=True)
    client.get(_page(ada))
    response = client.post(
        _page(ada),
        {
            "csrfmiddlewaretoken": client.cookies["csrftoken"].value,
            "channel:email": "on",
            "topic:beta": "on",
        },
    )
    assert response.status_code == 200
    assert "Your choices are saved." in response.content.decode()
    assert set(
        Consent.objects.filter(profile=ada).values_list("channel", "topic", "status", "source")
    ) == {
        ("sms", "", "unsubscribed", "preference_centre"),
        ("whatsapp", "", "unsubscribed", "preference_centre"),
        ("", "news", "unsubscribed", "preference_centre"),
        ("", "beta", "subscribed", "preference_centre"),
    }
    assert AuditLog.objects.filter(action="consent.change").count() == 4
    # The same choices again change nothing.
    client.post(
        _page(ada),
        {
            "csrfmiddlewaretoken": client.cookies["csrftoken"].value,
            "channel:email": "on",
            "topic:beta": "on",
        },
    )
    assert AuditLog.objects.filter(action="consent.change").count() == 4


def test_unsubscribe_from_everything(ada):
    Client().post(_page(ada), {"unsubscribe_all": "1", "channel:email": "on"})
    assert set(Consent.objects.filter(profile=ada).values_list("channel", "topic", "status")) == {
        ("email", "", "unsubscribed"),
        ("sms", "", "unsubscribed"),
        ("whatsapp", "", "unsubscribed"),
        ("", "news", "unsubscribed"),
    }


def test_a_forged_or_altered_link_is_refused(ada):
    token = preferences_token(ada.pk)
    assert Client().get(f"/p/{token[:-1]}x/").status_code == 404
    assert Client().get("/p/1/").status_code == 404
    response = Client().post(f"/p/{token}x/", {"unsubscribe_all": "1"})
    assert response.status_code == 404
    assert Consent.objects.count() == 0
