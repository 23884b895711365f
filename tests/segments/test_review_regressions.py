"""Regressions for faults found in review: each once lost data, answered 500, or leaked."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from engagement_site.workspaces.models import AuditLog
from engagement_site.workspaces.services import api_key_create
from segments.importers import import_draft_create, import_job_run, import_job_start, read_rows
from segments.models import (
    Event,
    EventMessageId,
    EventSchema,
    IngestionSettings,
    Profile,
    RejectedEvent,
)
from tests.conftest import SETUP, logged_in
from tests.segments.test_ingestion_api import post, track


@pytest.fixture
def write_key(workspace) -> str:
    _, raw_key = api_key_create(workspace=workspace, kind="write", name="Website", context=SETUP)
    return raw_key


@pytest.mark.parametrize(
    "batch",
    [
        {"batch": [track("m1", timestamp="0001-01-01T00:00:00+01:00")]},
        {"batch": [track("m1", timestamp="0001-01-02T00:00:00Z", sentAt="9999-12-31T00:00:00Z")]},
        {"batch": [track("m1", timestamp="9999-12-31T00:00:00Z", sentAt="0001-01-01T00:00:00Z")]},
        {"batch": [track("m1")], "sentAt": "9999-12-31T23:00:00-05:00"},
    ],
)
def test_absurd_dates_never_fail_the_batch(client, workspace, write_key, batch):
    good = track("m-good", userId="bea")
    batch["batch"].append(good)
    response = post(client, "/v1/batch", batch, key=write_key)
    assert response.status_code == 200
    stored = set(Event.objects.values_list("message_id", flat=True))
    quarantined = set(RejectedEvent.objects.values_list("message_id", flat=True))
    assert stored | quarantined == {"m1", "m-good"}  # answered 200, nothing lost
    if "sentAt" in batch:  # a bad batch-level sentAt quarantines the calls that rely on it
        assert quarantined == {"m1", "m-good"}
    else:
        assert "m-good" in stored


def test_a_schema_quarantined_event_can_be_resent_corrected(client, workspace, write_key):
    IngestionSettings.objects.create(workspace=workspace, schema_violation_action="quarantine")
    EventSchema.objects.create(
        workspace=workspace,
        event_name="Signed Up",
        properties={"plan": {"type": "string", "required": True}},
    )
    first = post(client, "/v1/batch", {"batch": [track("m1")]}, key=write_key)
    assert (first.status_code, Event.objects.count(), RejectedEvent.objects.count()) == (200, 0, 1)
    assert EventMessageId.objects.count() == 0
    post(client, "/v1/batch", {"batch": [track("m1", properties={"plan": "pro"})]}, key=write_key)
    assert list(Event.objects.values_list("message_id", "properties")) == [("m1", {"plan": "pro"})]


def test_write_key_use_is_audited_without_the_end_users_ip_or_browser(client, workspace, write_key):
    post(
        client,
        "/v1/batch",
        {"batch": [track("m1")]},
        key=write_key,
        HTTP_USER_AGENT="Mozilla/5.0 (private)",
    )
    row = AuditLog.objects.get(action="api_key.use")
    assert (row.ip_address, row.user_agent) == (None, "")


@pytest.mark.parametrize(
    ("traits", "message"),
    [
        ({"x": "a\u0000b"}, "traits.x: contains a NUL character"),
        ({"big": 123456789012345678901234567890}, "traits.big: integer outside the 64-bit range"),
        ({"deep": {"list": [1, 1e400]}}, "traits.deep.list[1]: not a finite number"),
    ],
)
def test_trait_values_the_database_cannot_hold_are_refused(workspace, owner, traits, message):
    profile = Profile.objects.create(workspace=workspace, user_id="u1", traits={"keep": 1})
    client = logged_in(owner)
    body = (
        '{"traits": '
        + (
            '{"deep": {"list": [1, 1e400]}}'
            if "deep" in traits
            else __import__("json").dumps(traits)
        )
        + "}"
    )
    response = client.patch(
        f"/api/v1/profiles/{profile.pk}/",
        body,
        content_type="application/json",
        headers={"X-Workspace": "acme"},
    )
    assert response.status_code == 400
    assert message in str(response.json()["errors"])
    profile.refresh_from_db()
    assert profile.traits == {"keep": 1}


def test_an_analyst_may_export_but_not_erase(workspace, make_member):
    profile = Profile.objects.create(workspace=workspace, user_id="u1")
    analyst = Client()
    analyst.force_login(make_member("analyst"))
    export = analyst.get(f"/api/v1/profiles/{profile.pk}/export", headers={"X-Workspace": "acme"})
    erase = analyst.post(f"/api/v1/profiles/{profile.pk}/erase", headers={"X-Workspace": "acme"})
    assert (export.status_code, erase.status_code) == (200, 403)
    assert Profile.objects.filter(pk=profile.pk).exists()


def test_json_lines_keep_unicode_line_separators_inside_strings():
    rows = list(read_rows('{"name": "a\u2028b"}\r\n{"name": "c"}\n'.encode(), "jsonl"))
    assert rows == [(1, {"name": "a\u2028b"}), (2, {"name": "c"})]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            b"customer,order,total,at\nc1,o1,99999999999999999999,2026-01-01\n",
            "'99999999999999999999' is too large",
        ),
        (b"customer,order,total,at\nc1,o1,1e999999999,2026-01-01\n", "'1e999999999' is too large"),
    ],
)
def test_huge_numbers_are_row_errors_and_the_job_finishes(
    workspace, settings, tmp_path, content, expected
):
    settings.MEDIA_ROOT = tmp_path
    job = import_draft_create(
        workspace=workspace,
        kind="purchases",
        uploaded_file=SimpleUploadedFile("o.csv", content),
        context=SETUP,
    )
    import_job_start(
        job=job,
        mapping={"customer": "user_id", "order": "order_id", "total": "revenue", "at": "timestamp"},
        context=SETUP,
        enqueue=False,
    )
    job = import_job_run(import_job_id=job.pk)
    assert (job.status, job.rejected, job.imported) == ("done", 1, 0)
    assert expected in job.errors[0]["message"]


def test_an_unreadable_csv_fails_the_job_with_the_reason(workspace, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    big = "x" * 200_000
    content = ("id\n" + "\n".join(f"u{i}" for i in range(60)) + f"\n{big}\n").encode()
    job = import_draft_create(
        workspace=workspace,
        kind="profiles",
        uploaded_file=SimpleUploadedFile("p.csv", content),
        context=SETUP,
    )
    import_job_start(job=job, mapping={"id": "user_id"}, context=SETUP, enqueue=False)
    job = import_job_run(import_job_id=job.pk)
    assert job.status == "failed"
    assert job.failure.startswith("The CSV file cannot be read: field larger than field limit")


def test_a_json_file_with_a_byte_order_mark_is_recognised():
    from segments.importers import detect_format

    assert detect_format("upload", b'\xef\xbb\xbf[{"id": 1}]') == "json"


def test_a_trait_cannot_be_both_a_value_and_a_parent():
    from segments.importers import validate_mapping

    assert validate_mapping(
        "profiles", {"id": "user_id", "a": "trait:address", "b": "trait:address.city"}
    ) == ["'trait:address' cannot be both a value and the parent of 'trait:address.city'"]


def test_a_job_whose_enqueue_was_lost_is_queued_again(
    workspace, settings, tmp_path, django_capture_on_commit_callbacks
):
    from datetime import timedelta

    import django_rq
    from django.utils import timezone

    from segments.importers import import_jobs_requeue_waiting
    from segments.models import ImportJob

    settings.MEDIA_ROOT = tmp_path
    job = import_draft_create(
        workspace=workspace,
        kind="profiles",
        uploaded_file=SimpleUploadedFile("p.csv", b"id\nu1\n"),
        context=SETUP,
    )
    import_job_start(job=job, mapping={"id": "user_id"}, context=SETUP, enqueue=False)
    assert import_jobs_requeue_waiting() == 0  # just started: its own enqueue may still come
    ImportJob.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(minutes=5))
    with django_capture_on_commit_callbacks(execute=True):  # django-rq enqueues on commit
        assert import_jobs_requeue_waiting() == 1
    queued = django_rq.get_queue("ingest").jobs
    assert [(j.func_name, j.args) for j in queued] == [
        ("segments.tasks.import_job_process", (job.pk,))
    ]
