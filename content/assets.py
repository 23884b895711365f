"""Writes of the media library: upload, process (RQ job), update, publish, delete, and
folders. Every change a person makes is audited.

An upload is checked completely (content/media.py) before anything is stored; if
anything fails after the file was written, the file is deleted again, so a refused or
failed upload leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import uuid

import django_rq
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone

from content.media import (
    UploadRejected,
    human_size,
    image_info,
    public_file_name,
    sniff_upload,
    video_info,
)
from content.models import Asset, AssetFolder
from engagement_site.workspaces.models import Workspace
from engagement_site.workspaces.services import AuditContext, audit_record

logger = logging.getLogger(__name__)
MAX_TAGS = 30
PROCESS_QUEUE = "default"


class AssetInUse(ValidationError):
    """The asset is referenced by templates (their names are in the message)."""

    def __str__(self) -> str:  # the message itself, not ValidationError's list repr
        return " ".join(self.messages)


def normalize_tags(tags) -> list[str]:
    result: list[str] = []
    for tag in tags or ():
        tag = " ".join(str(tag).split()).lower()[:50]
        if tag and tag not in result:
            result.append(tag)
    return result[:MAX_TAGS]


def _display_name(name: str) -> str:
    name = os.path.basename((name or "").replace("\\", "/")).strip()
    return name[:255] or "upload"


def asset_upload(
    *,
    workspace: Workspace,
    uploaded_file,
    context: AuditContext,
    folder: AssetFolder | None = None,
    tags=(),
    user=None,
) -> Asset:
    """Check, store and register one uploaded file; its metadata and thumbnail are made
    by a job queued on commit. Raises UploadRejected with a message naming the file."""
    name = _display_name(getattr(uploaded_file, "name", ""))
    size = uploaded_file.size
    sniffed = sniff_upload(name=name, file=uploaded_file, size=size)
    data = sniffed.replacement
    if data is not None:
        size = len(data)
    if folder is not None and folder.workspace_id != workspace.pk:
        raise UploadRejected(f"{name}: that folder is not in this workspace.")

    digest = hashlib.sha256()
    if data is None:
        uploaded_file.seek(0)
        for chunk in uploaded_file.chunks():
            digest.update(chunk)
        uploaded_file.seek(0)
    else:
        digest.update(data)

    storage = storages["assets"]
    stored_name = None
    try:
        with transaction.atomic():
            # The quota is checked under the workspace's row lock, so two concurrent
            # uploads cannot both squeeze under it.
            Workspace.objects.select_for_update().filter(pk=workspace.pk).first()
            used = (
                Asset.objects.filter(workspace=workspace).aggregate(total=Sum("size_bytes"))[
                    "total"
                ]
                or 0
            )
            quota = settings.ASSET_WORKSPACE_QUOTA_BYTES
            if used + size > quota:
                raise UploadRejected(
                    f"{name}: the workspace's media would take {human_size(used + size)}, over its "
                    f"quota of {human_size(quota)} ({human_size(used)} used). Delete unused media first."
                )
            generated = f"{workspace.pk}/{uuid.uuid4().hex}.{sniffed.extension}"
            stored_name = storage.save(
                generated, ContentFile(data) if data is not None else uploaded_file
            )
            asset = Asset.objects.create(
                workspace=workspace,
                folder=folder,
                name=name,
                kind=sniffed.kind,
                mime_type=sniffed.mime_type,
                size_bytes=size,
                checksum_sha256=digest.hexdigest(),
                file=stored_name,
                width=sniffed.width,
                height=sniffed.height,
                frame_count=sniffed.frame_count,
                tags=normalize_tags(tags),
                uploaded_by=user if user is not None else context.actor,
            )
            audit_record(
                context=context,
                action="asset.upload",
                workspace=workspace,
                target=asset,
                changes={"name": name, "mime_type": sniffed.mime_type, "size_bytes": size},
            )
            transaction.on_commit(lambda: asset_process_enqueue(asset_id=asset.pk))
    except BaseException:
        if stored_name:
            storage.delete(stored_name)
        raise
    return asset


def asset_process_enqueue(*, asset_id: int) -> None:
    from content.tasks import asset_process_job

    django_rq.get_queue(PROCESS_QUEUE, commit_mode="auto").enqueue(asset_process_job, asset_id)


class _AssetGone(Exception):
    """The asset was deleted while its job ran."""


def _progress(asset: Asset, percent: int) -> None:
    # An UPDATE of the one column rather than save(): it writes nothing else a person
    # may be changing meanwhile, and it notices an asset deleted mid-job.
    asset.progress = percent
    if not Asset.objects.filter(pk=asset.pk).update(progress=percent, updated_at=timezone.now()):
        raise _AssetGone


def asset_process(*, asset_id: int) -> Asset | None:
    """Read metadata and make the thumbnail. Safe to run twice: a ready asset is left
    alone, and the thumbnail has one name per asset, written over on a second run. A
    failure marks the asset failed with the reason and does not raise; an asset deleted
    meanwhile leaves no thumbnail behind."""
    asset = Asset.objects.filter(pk=asset_id).first()
    if asset is None or asset.status == Asset.Status.READY:
        return asset
    storage = storages["assets"]
    thumbnail_name = ""
    try:
        _progress(asset, 10)
        if asset.kind == Asset.Kind.IMAGE:
            with storage.open(asset.file.name, "rb") as handle:
                data = handle.read()
            _progress(asset, 40)
            info = image_info(data, asset.mime_type, name=asset.name)
        else:
            with (
                storage.open(asset.file.name, "rb") as handle,
                tempfile.NamedTemporaryFile(
                    suffix="." + asset.file.name.rsplit(".", 1)[-1]
                ) as temporary,
            ):
                for chunk in iter(lambda: handle.read(1024 * 1024), b""):
                    temporary.write(chunk)
                temporary.flush()
                _progress(asset, 40)
                info = video_info(temporary.name, asset.mime_type)
        _progress(asset, 80)
        if info.thumbnail:
            wanted = f"{asset.file.name.rsplit('.', 1)[0]}.thumb.{info.thumbnail_extension}"
            if storage.exists(wanted):  # a previous run's: replace it, keep the name
                storage.delete(wanted)
            thumbnail_name = storage.save(wanted, ContentFile(info.thumbnail))
            if asset.thumbnail and asset.thumbnail.name != thumbnail_name:
                storage.delete(asset.thumbnail.name)
        updated = Asset.objects.filter(pk=asset.pk).update(
            status=Asset.Status.READY,
            progress=100,
            error="",
            thumbnail=thumbnail_name or asset.thumbnail.name or "",
            width=info.width if info.width is not None else asset.width,
            height=info.height if info.height is not None else asset.height,
            frame_count=info.frame_count if info.frame_count is not None else asset.frame_count,
            duration_ms=info.duration_ms,
            updated_at=timezone.now(),
        )
        if not updated:
            raise _AssetGone
    except _AssetGone:
        if thumbnail_name:
            storage.delete(thumbnail_name)
        return None
    except Exception as error:
        logger.exception("processing asset %s failed", asset_id)
        reason = (
            str(error) if isinstance(error, UploadRejected) else f"{type(error).__name__}: {error}"
        )
        Asset.objects.filter(pk=asset.pk).update(
            status=Asset.Status.FAILED, error=reason[:1000], updated_at=timezone.now()
        )
    return Asset.objects.filter(pk=asset_id).first()


def asset_update(
    *,
    asset: Asset,
    context: AuditContext,
    name: str | None = None,
    tags=None,
    folder: AssetFolder | type[Ellipsis] | None = ...,
    alt_text: str | None = None,
) -> Asset:
    changes: dict = {}
    if name is not None:
        name = _display_name(name)
        if name != asset.name:
            changes["name"] = [asset.name, name]
            asset.name = name
    if tags is not None and normalize_tags(tags) != asset.tags:
        changes["tags"] = [asset.tags, normalize_tags(tags)]
        asset.tags = changes["tags"][1]
    if folder is not ...:
        if folder is not None and folder.workspace_id != asset.workspace_id:
            raise ValidationError("That folder is not in this workspace.")
        if (folder.pk if folder else None) != asset.folder_id:
            changes["folder"] = [asset.folder_id, folder.pk if folder else None]
            asset.folder = folder
    if alt_text is not None and alt_text[:300] != asset.alt_text:
        changes["alt_text"] = [asset.alt_text, alt_text[:300]]
        asset.alt_text = alt_text[:300]
    if not changes:
        return asset
    with transaction.atomic():
        asset.save(update_fields=["name", "tags", "folder", "alt_text", "updated_at"])
        audit_record(
            context=context,
            action="asset.update",
            workspace=asset.workspace,
            target=asset,
            changes=changes,
        )
    return asset


def asset_publish(*, asset: Asset) -> Asset:
    """Copy the original to the public store at the address templates already use.
    Idempotent. Not audited: it follows from saving a template that uses the asset."""
    if asset.public_file:
        return asset
    public = storages["assets_public"]
    target = public_file_name(asset)
    if not public.exists(target):
        with storages["assets"].open(asset.file.name, "rb") as handle:
            saved = public.save(target, handle)
        if saved != target:  # the storage renamed it: never serve under another name
            public.delete(saved)
            raise RuntimeError(f"public storage refused the name {target}")
    Asset.objects.filter(pk=asset.pk).update(public_file=target)
    asset.public_file = target
    return asset


def asset_delete(*, asset: Asset, context: AuditContext, force: bool = False) -> None:
    """Delete an asset and its files. Refused while templates use it, unless forced
    (their messages will then show a broken image)."""
    from content.selectors import asset_usages

    asset.refresh_from_db()  # a template save may have published it since it was read
    users = asset_usages(workspace=asset.workspace, asset=asset)
    if users and not force:
        names = ", ".join(template.name for template in users)
        raise AssetInUse(
            f"{asset.name} is used by {names}. Remove it from them first, or delete it anyway."
        )
    names = [name for name in (asset.file.name, asset.thumbnail.name) if name]
    public_name = asset.public_file.name if asset.public_file else ""
    with transaction.atomic():
        audit_record(
            context=context,
            action="asset.delete",
            workspace=asset.workspace,
            target=asset,
            changes={
                "name": asset.name,
                "forced": bool(users and force),
                "used_by": [t.name for t in users],
            },
        )
        asset.delete()

        def remove_files() -> None:
            for name in names:
                storages["assets"].delete(name)
            if public_name:
                storages["assets_public"].delete(public_name)

        transaction.on_commit(remove_files)


# --------------------------------------------------------------------------- folders


def asset_folder_create(
    *, workspace: Workspace, name: str, context: AuditContext, parent: AssetFolder | None = None
) -> AssetFolder:
    name = " ".join((name or "").split())[:100]
    if not name:
        raise ValidationError("A folder needs a name.")
    if parent is not None and parent.workspace_id != workspace.pk:
        raise ValidationError("That parent folder is not in this workspace.")
    try:
        with transaction.atomic():
            folder = AssetFolder.objects.create(workspace=workspace, name=name, parent=parent)
            audit_record(
                context=context, action="asset_folder.create", workspace=workspace, target=folder
            )
    except IntegrityError:
        raise ValidationError(f"A folder named {name!r} already exists here.") from None
    return folder


def asset_folder_rename(*, folder: AssetFolder, name: str, context: AuditContext) -> AssetFolder:
    name = " ".join((name or "").split())[:100]
    if not name:
        raise ValidationError("A folder needs a name.")
    before = folder.name
    folder.name = name
    try:
        with transaction.atomic():
            folder.save(update_fields=["name"])
            audit_record(
                context=context,
                action="asset_folder.rename",
                workspace=folder.workspace,
                target=folder,
                changes={"name": [before, name]},
            )
    except IntegrityError:
        raise ValidationError(f"A folder named {name!r} already exists here.") from None
    return folder


def asset_folder_delete(*, folder: AssetFolder, context: AuditContext) -> None:
    """Delete a folder (and its sub-folders); their assets stay, in no folder."""
    with transaction.atomic():
        audit_record(
            context=context, action="asset_folder.delete", workspace=folder.workspace, target=folder
        )
        folder.delete()


__all__ = [
    "AssetInUse",
    "UploadRejected",
    "asset_delete",
    "asset_folder_create",
    "asset_folder_delete",
    "asset_folder_rename",
    "asset_process",
    "asset_publish",
    "asset_update",
    "asset_upload",
]
