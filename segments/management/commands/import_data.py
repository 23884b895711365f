"""Import profiles, events or purchases from a CSV / JSON / JSON Lines file.

    manage.py import_data customers.csv --workspace demo --kind profiles \
        --map "Customer ID=user_id" --map "E-mail=email" --map "Plan=trait:plan"

Columns not given with --map keep the suggested mapping (shown by --dry-run). Bad rows
are reported with their row numbers; good rows are imported; importing the same file
again imports nothing twice.
"""

from __future__ import annotations

import sys
from pathlib import Path

from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management.base import BaseCommand, CommandError

from engagement_site.workspaces.models import Workspace
from engagement_site.workspaces.selectors import workspace_by_slug
from engagement_site.workspaces.services import AuditContext
from segments.importers import (
    IGNORE,
    ImportFileError,
    ImportKind,
    columns_of,
    detect_format,
    import_draft_create,
    import_job_run,
    import_job_start,
    suggest_mapping,
    validate_mapping,
)
from segments.importers import (
    dry_run as check_rows,
)


def _progress_bar(job) -> None:
    total = job.total_rows or 1
    done = min(job.processed_rows, total)
    width = 40
    filled = round(width * done / total)
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} rows")
    sys.stderr.flush()


class Command(BaseCommand):
    help = "Import profiles, events or purchases from a file (CSV, JSON array or JSON Lines)."

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument("--workspace", required=True, help="Workspace slug")
        parser.add_argument("--kind", required=True, choices=ImportKind.values)
        parser.add_argument(
            "--map",
            action="append",
            default=[],
            metavar="COLUMN=FIELD",
            help="Map a column (FIELD '' skips it)",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Check every row and print the first errors; import nothing",
        )

    def handle(
        self, *args, file: Path, workspace: str, kind: str, map: list[str], dry_run: bool, **options
    ):
        try:
            target = workspace_by_slug(slug=workspace)
        except Workspace.DoesNotExist as error:
            raise CommandError(str(error)) from None
        if not file.is_file():
            raise CommandError(f"No such file: {file}")
        data = file.read_bytes()
        file_format = detect_format(file.name, data[:512])
        try:
            mapping = suggest_mapping(kind, columns_of(data, file_format))
        except ImportFileError as error:
            raise CommandError(str(error)) from None
        for item in map:
            column, separator, field = item.partition("=")
            if not separator:
                raise CommandError(f"--map {item!r}: write COLUMN=FIELD")
            if column not in mapping:
                raise CommandError(
                    f"--map {item!r}: the file has no column {column!r} (columns: {', '.join(mapping)})"
                )
            mapping[column] = field.strip() or IGNORE
        problems = validate_mapping(kind, mapping)
        if problems:
            raise CommandError("Mapping: " + "; ".join(problems))
        self.stdout.write(
            "Mapping: "
            + ", ".join(f"{column} -> {field or '(skipped)'}" for column, field in mapping.items())
        )

        check = check_rows(kind=kind, mapping=mapping, data=data, file_format=file_format)
        for error in check.errors[:20]:
            self.stdout.write(
                f"  row {error.row}{f' column {error.column}' if error.column else ''}: {error.message}"
            )
        self.stdout.write(f"{check.rows} rows: {check.valid} valid, {check.invalid} with errors.")
        if dry_run:
            return
        context = AuditContext.system("manage.py import_data")
        job = import_draft_create(
            workspace=target,
            kind=kind,
            uploaded_file=SimpleUploadedFile(file.name, data),
            context=context,
        )
        import_job_start(job=job, mapping=mapping, context=context, enqueue=False)
        job = import_job_run(import_job_id=job.pk, progress=_progress_bar)
        sys.stderr.write("\n")
        if job.status != job.Status.DONE:
            raise CommandError(f"Import failed: {job.failure}")
        self.stdout.write(
            self.style.SUCCESS(
                f"Imported {job.imported}, already present {job.duplicates}, rejected {job.rejected} (import #{job.pk})."
            )
        )
