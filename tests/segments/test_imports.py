"""Imports end to end: a file with good and bad rows, the command line and the UI with a
real RQ worker; importing the same file again adds nothing."""

from __future__ import annotations

from io import StringIO

import django_rq
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.urls import reverse
from rq import SimpleWorker

from engagement_site.workspaces.models import AuditLog
from segments.models import Event, ImportJob, Profile
from tests.conftest import logged_in

PROFILES = (
    b"Customer ID,E-mail,First Name,Plan,Signup Date\n"
    b"c-1,ada@example.com,Ada,pro,2026-01-05\n"
    b"c-2,not-an-email,Bob,free,2026-02-01\n"
    b"c-3,carol@example.com,Carol,free,2026-03-01\n"
    b",nobody@example.com,Nobody,free,2026-03-02\n"
)
PURCHASES = (
    b'[{"customer": "c-1", "order": "o-1", "total": "19.90", "at": "2026-05-01T10:00:00Z"},'
    b' {"customer": "c-1", "order": "o-2", "total": "abc", "at": "2026-05-02T10:00:00Z"},'
    b' {"customer": "c-3", "order": "o-3", "total": 5, "at": "2026-05-03"}]'
)


@pytest.fixture
def profiles_file(tmp_path):
    path = tmp_path / "customers.csv"
    path.write_bytes(PROFILES)
    return path


def _import(path, *extra) -> str:
    out = StringIO()
    call_command(
        "import_data", str(path), "--workspace", "acme", "--kind", "profiles", *extra, stdout=out
    )
    return out.getvalue()


def test_command_imports_good_rows_reports_bad_ones_and_a_rerun_adds_nothing(
    workspace, profiles_file, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path / "media"
    first = _import(profiles_file, "--map", "Plan=trait:plan")
    assert "  row 3 column E-mail: 'not-an-email' is not an email address" in first
    assert "  row 5 column Customer ID: user_id is required and empty" in first
    assert "Imported 2, already present 0, rejected 2" in first
    ada = Profile.objects.get(workspace=workspace, user_id="c-1")
    assert (ada.email, ada.traits["plan"], ada.traits["first_name"]) == (
        "ada@example.com",
        "pro",
        "Ada",
    )
    assert sorted(Profile.objects.values_list("user_id", flat=True)) == ["c-1", "c-3"]

    events_before = Event.objects.count()
    second = _import(profiles_file, "--map", "Plan=trait:plan")
    assert "Imported 0, already present 2, rejected 2" in second
    assert Profile.objects.count() == 2
    assert Event.objects.count() == events_before


def test_dry_run_imports_nothing(workspace, profiles_file):
    output = _import(profiles_file, "--dry-run")
    assert "4 rows: 2 valid, 2 with errors." in output
    assert Profile.objects.count() == 0
    assert ImportJob.objects.count() == 0


def test_command_refuses_a_bad_mapping_and_names_the_column(workspace, profiles_file):
    with pytest.raises(CommandError, match="the file has no column 'Nope'"):
        _import(profiles_file, "--map", "Nope=email")
    with pytest.raises(CommandError, match="required field 'user_id' is not mapped to any column"):
        _import(profiles_file, "--map", "Customer ID=")
    assert ImportJob.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_ui_upload_map_dry_run_and_import_with_a_real_worker(workspace, owner, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    Profile.objects.create(workspace=workspace, user_id="c-1")
    Profile.objects.create(workspace=workspace, user_id="c-3")
    client = logged_in(owner)
    upload = client.post(
        reverse("import_list", kwargs={"workspace_slug": "acme"}),
        {"kind": "purchases", "file": SimpleUploadedFile("orders.json", PURCHASES)},
    )
    job = ImportJob.objects.get()
    assert upload.status_code == 302
    assert (job.status, job.mapping) == (
        "draft",
        {
            "customer": "property:customer",
            "order": "order_id",
            "total": "revenue",
            "at": "property:at",
        },
    )
    url = reverse("import_detail", kwargs={"workspace_slug": "acme", "import_id": job.pk})
    page = client.post(
        url,
        {
            "action": "dry_run",
            "map-0": "user_id",
            "map-1": "order_id",
            "map-2": "revenue",
            "map-3": "timestamp",
        },
    )
    assert page.context["preview"].valid == 2
    assert [e.as_dict() for e in page.context["preview"].errors] == [
        {"row": 2, "column": "total", "message": "'abc' is not a number"}
    ]
    assert ImportJob.objects.get().status == "draft"

    client.post(
        url,
        {
            "action": "import",
            "map-0": "user_id",
            "map-1": "order_id",
            "map-2": "revenue",
            "map-3": "timestamp",
        },
    )
    assert ImportJob.objects.get().status == "pending"
    SimpleWorker(
        [django_rq.get_queue("ingest")], connection=django_rq.get_connection("ingest")
    ).work(burst=True)
    job.refresh_from_db()
    assert (
        job.status,
        job.total_rows,
        job.processed_rows,
        job.imported,
        job.duplicates,
        job.rejected,
    ) == ("done", 3, 3, 2, 0, 1)
    orders = Event.objects.filter(workspace=workspace, name="order_completed").order_by("timestamp")
    assert [
        (e.profile.user_id, e.properties["order_id"], e.properties["revenue"]) for e in orders
    ] == [("c-1", "o-1", 19.9), ("c-3", "o-3", 5)]
    progress = client.get(url, headers={"HX-Request": "true"}).content.decode()
    assert 'data-testid="imported">2<' in progress
    assert "hx-trigger" not in progress  # finished: the page stops polling
    assert list(
        AuditLog.objects.filter(object_type="segments.ImportJob")
        .values_list("action", flat=True)
        .order_by("sequence")
    ) == ["import.create", "import.start"]


def test_imports_are_workspace_scoped_and_need_segments_edit(
    workspace, owner, other_workspace, outsider, make_member, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path / "media"
    from engagement_site.workspaces.services import AuditContext
    from segments.importers import import_draft_create

    job = import_draft_create(
        workspace=other_workspace,
        kind="profiles",
        uploaded_file=SimpleUploadedFile("x.csv", PROFILES),
        context=AuditContext.system("t"),
    )
    viewer = logged_in(make_member("viewer"))
    owner_of_acme = logged_in(owner)
    assert viewer.get(reverse("import_list", kwargs={"workspace_slug": "acme"})).status_code == 403
    assert (
        owner_of_acme.get(
            reverse("import_detail", kwargs={"workspace_slug": "acme", "import_id": job.pk})
        ).status_code
        == 404
    )
