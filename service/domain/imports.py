"""Running a JSONL import: validate every line first, then insert in batches.

The file is read twice from disk (never held in memory): the first pass rejects bad lines
with their line numbers; the second inserts in batches, one commit per batch so a SQLite
writer lock is never held for a whole import. With on_error="abort" (the default) a file with
any bad line writes nothing; with "skip" the good lines go in and the report lists the rest.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any, Literal

import orjson
from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from service.db import begin_write, dialect_insert, plan_each_statement, utcnow
from service.domain.importers import FORMAT_KINDS, PARSERS, LineError, Record, check_shape
from service.errors import Invalid, NotFound
from service.models import (
    FeedbackKind,
    HumanLabel,
    Import,
    Item,
    ItemResponse,
    LabelOrigin,
    Project,
    Prompt,
    Response,
)

OnError = Literal["abort", "skip"]


@dataclass(frozen=True)
class ImportOptions:
    """How to run an import."""

    format: str = "arbiter"
    on_error: OnError = "abort"
    with_labels: bool = True
    batch_size: int = 1000
    max_errors: int = 100


class InvalidImport(Invalid):
    """An aborted import: nothing was written; the report lists the rejected lines."""

    code = "invalid_import"

    def __init__(self, report: Import, n_rejected: int) -> None:
        super().__init__(f"{n_rejected} line(s) rejected; nothing was imported", "body")
        self.report = report


def _records(
    stream: IO[bytes], fmt: str, kind: FeedbackKind
) -> Iterator[tuple[int, Record | LineError]]:
    parser = PARSERS[fmt]
    for lineno, raw in enumerate(stream, start=1):
        if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]  # a UTF-8 byte-order mark, as some editors write
        if not raw.strip():
            continue
        try:
            line = orjson.loads(raw)
            if not isinstance(line, dict):
                raise LineError("each line must be a JSON object")
            record = parser(line)
            check_shape(record, kind)
        except orjson.JSONDecodeError as exc:
            yield lineno, LineError(f"not valid JSON: {exc}")
        except LineError as exc:
            yield lineno, exc
        else:
            yield lineno, record


def _check_format(project: Project, fmt: str) -> None:
    if fmt not in PARSERS:
        raise Invalid(f"unknown format {fmt!r}; one of {sorted(PARSERS)}", "format")
    kinds = FORMAT_KINDS[fmt]
    if kinds is not None and project.kind not in kinds:
        raise Invalid(
            f"format {fmt!r} fills {'/'.join(sorted(kinds))} projects, "
            f"not this {project.kind.value} project",
            "format",
        )


def _validate(
    stream: IO[bytes], project: Project, opts: ImportOptions
) -> tuple[int, list[dict[str, Any]], set[int]]:
    """First pass: (lines read, errors to report, line numbers rejected)."""
    errors: list[dict[str, Any]] = []
    rejected: set[int] = set()
    seen_ids: set[str] = set()
    total = 0
    for lineno, result in _records(stream, opts.format, project.kind):
        total += 1
        external_id = result.external_id if isinstance(result, Record) else None
        if external_id is not None:
            if external_id in seen_ids:
                result = LineError(f"external_id {external_id!r} repeats", "external_id")
            else:
                seen_ids.add(external_id)
        if isinstance(result, LineError):
            rejected.add(lineno)
            if len(errors) < opts.max_errors:
                errors.append({"line": lineno, "field": result.field, "message": result.message})
    return total, errors, rejected


def run_import(
    session: Session, project_id: int, stream: IO[bytes], opts: ImportOptions, user_id: int
) -> Import:
    """Import a seekable JSONL stream into a project and return the import's report."""
    project = session.get(Project, project_id)
    if project is None:
        raise NotFound(f"project {project_id} not found", "project_id")
    session.commit()  # no transaction stays open through the validation pass
    _check_format(project, opts.format)
    total, errors, rejected = _validate(stream, project, opts)
    if total == 0:
        raise Invalid("the file holds no records", "body")
    begin_write(session)
    report = Import(
        project_id=project.id,
        format=opts.format,
        lines_total=total,
        errors=errors,
        created_by_id=user_id,
        status="running",
    )
    session.add(report)
    if rejected and opts.on_error == "abort":
        report.status, report.finished_at = "failed", utcnow()
        session.commit()
        raise InvalidImport(report, len(rejected))
    session.commit()
    stream.seek(0)
    writer = _BatchWriter(session, project, report, opts, user_id)
    try:
        for lineno, record in _records(stream, opts.format, project.kind):
            if lineno not in rejected and isinstance(record, Record):
                writer.add(record)
        writer.flush()
    except Exception:
        session.rollback()
        _finish(session, report.id, "failed")
        raise
    return _finish(session, report.id, "partial" if rejected else "completed")


def _finish(session: Session, import_id: int, status: str) -> Import:
    """Publish the import's items to annotators, or, if it failed, remove what it wrote."""
    begin_write(session)
    if status == "failed":
        # Its items were never visible (see _BatchWriter.flush): removing them (and with them
        # their responses' slots and labels) leaves nothing half-written.
        session.execute(delete(Item).where(Item.import_id == import_id))
    else:
        session.execute(update(Item).where(Item.import_id == import_id).values(is_complete=False))
    report = session.get(Import, import_id)
    assert report is not None
    report.status, report.finished_at = status, utcnow()
    if status == "failed":
        report.lines_imported = report.items_created = report.labels_created = 0
    session.commit()
    return report


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class _BatchWriter:
    """Inserts records a batch at a time: prompts (deduplicated), responses, items, labels."""

    def __init__(
        self, session: Session, project: Project, report: Import, opts: ImportOptions, user_id: int
    ) -> None:
        self.session, self.project, self.report = session, project, report
        self.opts, self.user_id = opts, user_id
        self.pending: list[Record] = []

    def add(self, record: Record) -> None:
        self.pending.append(record)
        if len(self.pending) >= self.opts.batch_size:
            self.flush()

    def _prompt_ids(self, records: list[Record]) -> dict[str, int]:
        hashes = {_sha(r.prompt): r.prompt for r in records}
        known = dict(
            self.session.execute(
                select(Prompt.text_sha256, Prompt.id).where(
                    Prompt.project_id == self.project.id, Prompt.text_sha256.in_(hashes)
                )
            ).all()
        )
        missing = [
            {"project_id": self.project.id, "text": text, "text_sha256": h, "created_at": utcnow()}
            for h, text in hashes.items()
            if h not in known
        ]
        if missing:
            # A concurrent import may add the same prompts: keep theirs, then read them back.
            upsert = dialect_insert(self.session)(Prompt).on_conflict_do_nothing(
                index_elements=["project_id", "text_sha256"]
            )
            self.session.execute(upsert, missing)
            known.update(
                self.session.execute(
                    select(Prompt.text_sha256, Prompt.id).where(
                        Prompt.project_id == self.project.id,
                        Prompt.text_sha256.in_([m["text_sha256"] for m in missing]),
                    )
                ).all()
            )
        return known

    def _drop_known_external_ids(self, records: list[Record]) -> list[Record]:
        ids = [r.external_id for r in records if r.external_id is not None]
        if not ids:
            return records
        known = set(
            self.session.scalars(
                select(Item.external_id).where(
                    Item.project_id == self.project.id, Item.external_id.in_(ids)
                )
            )
        )
        return [r for r in records if r.external_id is None or r.external_id not in known]

    def flush(self) -> None:
        if not self.pending:
            return
        batch, self.pending = self.pending, []
        begin_write(self.session)
        plan_each_statement(self.session)
        fresh = self._drop_known_external_ids(batch)
        prompt_ids = self._prompt_ids(fresh) if fresh else {}
        now = utcnow()
        items = (
            self.session.execute(
                insert(Item).returning(Item.id, sort_by_parameter_order=True),
                [
                    {
                        "project_id": self.project.id,
                        "prompt_id": prompt_ids[_sha(r.prompt)],
                        "kind": self.project.kind,
                        "external_id": r.external_id,
                        "tags": r.tags,
                        "metadata_": r.metadata,
                        "import_id": self.report.id,
                        "label_count": 0,
                        # Hidden from leasing until the whole import is in (_finish).
                        "is_complete": True,
                        "created_at": now,
                    }
                    for r in fresh
                ],
            )
            .scalars()
            .all()
            if fresh
            else []
        )
        response_rows = [
            {
                "prompt_id": prompt_ids[_sha(r.prompt)],
                "text": text,
                "source": source,
                "created_at": now,
            }
            for r in fresh
            for text, source in r.responses
        ]
        response_ids = iter(
            self.session.execute(
                insert(Response).returning(Response.id, sort_by_parameter_order=True), response_rows
            )
            .scalars()
            .all()
            if response_rows
            else []
        )
        slots = [
            {"item_id": item_id, "position": pos, "response_id": next(response_ids)}
            for item_id, r in zip(items, fresh, strict=True)
            for pos in range(len(r.responses))
        ]
        if slots:
            self.session.execute(insert(ItemResponse), slots)
        labels = [
            {
                "project_id": self.project.id,
                "item_id": item_id,
                "annotator_id": self.user_id,
                "kind": self.project.kind,
                "value": r.label,
                "origin": LabelOrigin.imported,
                "created_at": now,
            }
            for item_id, r in zip(items, fresh, strict=True)
            if r.label is not None and self.opts.with_labels
        ]
        if labels:
            self.session.execute(insert(HumanLabel), labels)
        self.report.lines_imported += len(fresh)
        self.report.duplicates_skipped += len(batch) - len(fresh)
        self.report.items_created += len(items)
        self.report.labels_created += len(labels)
        self.session.commit()
