"""The content library on an S3-compatible store (ASSET_STORAGE=s3), against a real
S3 API server on a local port (moto's server): upload, processing, publication,
serving and deletion go through the buckets."""

from __future__ import annotations

import boto3
import httpx
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from moto.server import ThreadedMotoServer

from content import services
from content.assets import asset_delete, asset_process, asset_upload
from engagement_site.storage import asset_storages_from_env
from engagement_site.workspaces.services import AuditContext
from tests.conftest import logged_in
from tests.content import samples

pytestmark = pytest.mark.django_db

EDITOR = AuditContext.system("test editor")


@pytest.fixture
def s3(monkeypatch, settings):
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    endpoint = "http://{}:{}".format(*server.get_host_and_port())
    environment = {
        "S3_ENDPOINT_URL": endpoint,
        "S3_REGION": "us-east-1",
        "S3_ACCESS_KEY_ID": "test-key",
        "S3_SECRET_ACCESS_KEY": "test-secret",
        "S3_PRIVATE_BUCKET": "engagement-private",
        "S3_PUBLIC_BUCKET": "engagement-public",
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test-key",
        aws_secret_access_key="test-secret",
    )
    client.create_bucket(Bucket="engagement-private")
    client.create_bucket(Bucket="engagement-public")
    settings.STORAGES = {
        **settings.STORAGES,
        **asset_storages_from_env("s3", media_root=settings.MEDIA_ROOT),
    }
    yield client
    server.stop()


def _keys(client, bucket: str) -> list[str]:
    return sorted(item["Key"] for item in client.list_objects_v2(Bucket=bucket).get("Contents", []))


def test_assets_live_in_the_buckets_and_public_copies_are_served_by_the_store(
    s3, workspace, owner, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        asset = asset_upload(
            workspace=workspace,
            uploaded_file=SimpleUploadedFile("Hero.png", samples.png(64, 48)),
            context=EDITOR,
        )
    assert _keys(s3, "engagement-private") == [asset.file.name]
    asset_process(asset_id=asset.pk)
    asset.refresh_from_db()
    assert (asset.status, asset.width, asset.height) == ("ready", 64, 48)
    assert _keys(s3, "engagement-private") == sorted([asset.file.name, asset.thumbnail.name])
    assert _keys(s3, "engagement-public") == []

    # Members read the original through the app, from the private bucket.
    url = reverse(
        "content_asset_file", kwargs={"workspace_slug": workspace.slug, "asset_id": asset.pk}
    )
    response = logged_in(owner).get(url)
    assert b"".join(response.streaming_content) == samples.png(64, 48)

    # A template that uses it publishes it: the store serves it at an unsigned URL.
    public_url = asset.public_url
    assert public_url.endswith(f"/engagement-public/{asset.public_token}/hero.png")
    assert "Signature" not in public_url
    with django_capture_on_commit_callbacks(execute=True):
        services.template_create(
            workspace=workspace,
            name="Hero",
            channel="in_app",
            content={"default": {"title": "Hi", "image_url": public_url}},
            context=EDITOR,
        )
    assert _keys(s3, "engagement-public") == [f"{asset.public_token}/hero.png"]
    fetched = httpx.get(public_url)
    assert (fetched.status_code, fetched.content) == (200, samples.png(64, 48))

    with django_capture_on_commit_callbacks(execute=True):
        asset_delete(asset=asset, context=EDITOR, force=True)
    assert _keys(s3, "engagement-private") == []
    assert _keys(s3, "engagement-public") == []
