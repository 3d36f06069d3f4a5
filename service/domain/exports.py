"""Exports: labels as TRL-ready rows (DPO/reward pairs, KTO rows, SFT rows) in JSONL or Parquet.

Labels are read in item order, a batch of items at a time, turned into votes and, by default,
into one majority row per unit; ties are left out and counted. Rows go to a file on disk so
exports of any size use bounded memory.

Sources: human labels, AI labels (each judge or constitution job votes once per unit), or
both, where an item's human labels, when it has any, stand and AI labels fill in the items
humans have not labeled. AI labels can be filtered by confidence and by position consistency.
Constitutional pairs (a revision over its original, made by a constitution job) are items of
their own: exported as `source=constitution` rows, or left out, or alone.
"""

from __future__ import annotations

import datetime as dt
import heapq
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import IO, Any, Literal

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from service.db import SelectT
from service.domain.votes import TIE, Consensus, Unit, Vote, consensus, label_votes
from service.errors import Invalid
from service.models import (
    AILabel,
    FeedbackKind,
    HumanLabel,
    Item,
    ItemResponse,
    Job,
    JobKind,
    LabelOrigin,
    Project,
    Prompt,
    Response,
    RevisionChain,
)

ExportFormat = Literal["dpo", "kto", "sft"]
FileFormat = Literal["jsonl", "parquet"]
Source = Literal["human", "ai", "both"]
Aggregate = Literal["majority", "none"]
Constitutional = Literal["include", "exclude", "only"]

_ITEMS_PER_BATCH = 500

SCHEMAS: dict[str, pa.Schema] = {
    "dpo": pa.schema(
        [
            ("prompt", pa.string()),
            ("chosen", pa.string()),
            ("rejected", pa.string()),
            ("item_id", pa.int64()),
            ("source", pa.string()),
            ("n_votes", pa.int64()),
            ("label_ids", pa.list_(pa.int64())),
            ("agreement", pa.float64()),
            ("strength", pa.float64()),
            ("confidence", pa.float64()),
        ]
    ),
    "kto": pa.schema(
        [
            ("prompt", pa.string()),
            ("completion", pa.string()),
            ("label", pa.bool_()),
            ("item_id", pa.int64()),
            ("source", pa.string()),
            ("n_votes", pa.int64()),
            ("label_ids", pa.list_(pa.int64())),
            ("agreement", pa.float64()),
            ("confidence", pa.float64()),
        ]
    ),
    "sft": pa.schema(
        [
            ("prompt", pa.string()),
            ("completion", pa.string()),
            ("item_id", pa.int64()),
            ("source", pa.string()),
        ]
    ),
}


@dataclass(frozen=True)
class ExportOptions:
    """What to export and which labels count."""

    format: ExportFormat = "dpo"
    source: Source = "human"
    aggregate: Aggregate = "majority"
    include_imported: bool = True  # for items that no annotator has labeled
    min_agreement: float | None = None
    min_votes: int = 1
    created_after: dt.datetime | None = None
    created_before: dt.datetime | None = None
    tag: str | None = None
    min_confidence: float | None = None  # AI labels below it are left out
    position_consistent_only: bool = False  # AI labels whose two orders disagree are left out
    judge_job_id: int | None = None  # only this judge job's AI labels
    constitutional: Constitutional = "include"  # constitution jobs' (revision, original) pairs


@dataclass(frozen=True)
class _Label:
    """A human or AI label, as the export reads it."""

    item_id: int
    kind: FeedbackKind
    value: dict[str, Any]
    voter_id: int  # annotator id; minus the job id for an AI label
    origin: str  # "annotation", "import" or "ai"
    label_id: int
    confidence: float | None = None
    source: str = "human"  # the rows' source: human, ai, or constitution


@dataclass
class ExportSummary:
    """What an export wrote and what it left out."""

    rows: int = 0
    items: int = 0
    ties_skipped: int = 0
    below_agreement_skipped: int = 0
    counts: dict[str, int] = field(default_factory=dict)


def check_options(project: Project, opts: ExportOptions) -> None:
    """Reject combinations that cannot produce rows, naming the parameter."""
    if opts.source == "human" and (
        opts.min_confidence is not None or opts.position_consistent_only or opts.judge_job_id
    ):
        raise Invalid(
            "min_confidence, position_consistent_only and judge_job_id filter AI labels; "
            "use source=ai or source=both",
            "source",
        )
    if opts.format == "kto" and project.kind != FeedbackKind.binary:
        raise Invalid(
            "format=kto exports binary projects; use dpo for pairs and rankings", "format"
        )
    if opts.format == "dpo" and project.kind == FeedbackKind.binary:
        raise Invalid("format=dpo exports pairwise/listwise projects; use kto", "format")
    if opts.min_agreement is not None and not 0 <= opts.min_agreement <= 1:
        raise Invalid("min_agreement must be between 0 and 1", "min_agreement")


def _constitutional_items(query: SelectT, item_id: Any, opts: ExportOptions) -> SelectT:
    """The query limited to constitutional pair items, or without them, as asked."""
    if opts.constitutional == "include":
        return query
    is_pair = select(RevisionChain.id).where(RevisionChain.pair_item_id == item_id).exists()
    return query.where(is_pair if opts.constitutional == "only" else ~is_pair)


def _human_labels(session: Session, project_id: int, opts: ExportOptions) -> Iterator[_Label]:
    query = select(HumanLabel).where(HumanLabel.project_id == project_id)
    query = _constitutional_items(query, HumanLabel.item_id, opts)
    if not opts.include_imported:
        query = query.where(HumanLabel.origin == LabelOrigin.annotation)
    if opts.created_after is not None:
        query = query.where(HumanLabel.created_at >= opts.created_after)
    if opts.created_before is not None:
        query = query.where(HumanLabel.created_at < opts.created_before)
    for label in session.scalars(
        query.order_by(HumanLabel.item_id, HumanLabel.id).execution_options(yield_per=2000)
    ):
        origin = "import" if label.origin == LabelOrigin.imported else "annotation"
        yield _Label(label.item_id, label.kind, label.value, label.annotator_id, origin, label.id)


def _ai_labels(session: Session, project_id: int, opts: ExportOptions) -> Iterator[_Label]:
    query = (
        select(AILabel, Job.kind)
        .join(Job, Job.id == AILabel.job_id)
        .where(AILabel.project_id == project_id)
    )
    query = _constitutional_items(query, AILabel.item_id, opts)
    if opts.judge_job_id is not None:
        query = query.where(AILabel.job_id == opts.judge_job_id)
    if opts.min_confidence is not None:
        query = query.where(AILabel.confidence >= opts.min_confidence)
    if opts.position_consistent_only:  # binary labels have no orders to agree
        query = query.where(
            or_(AILabel.position_consistent.is_(True), AILabel.kind == FeedbackKind.binary)
        )
    if opts.created_after is not None:
        query = query.where(AILabel.created_at >= opts.created_after)
    if opts.created_before is not None:
        query = query.where(AILabel.created_at < opts.created_before)
    for label, job_kind in session.execute(
        query.order_by(AILabel.item_id, AILabel.id).execution_options(yield_per=2000)
    ):
        source = "constitution" if job_kind == JobKind.constitution else "ai"
        yield _Label(
            label.item_id,
            label.kind,
            label.value,
            -label.job_id,
            "ai",
            label.id,
            label.confidence,
            source,
        )


def _label_batches(
    session: Session, project_id: int, opts: ExportOptions
) -> Iterator[list[_Label]]:
    streams = []
    if opts.source in ("human", "both"):
        streams.append(_human_labels(session, project_id, opts))
    if opts.source in ("ai", "both"):
        streams.append(_ai_labels(session, project_id, opts))
    batch: list[_Label] = []
    items_in_batch: set[int] = set()
    for label in heapq.merge(*streams, key=lambda lb: lb.item_id):
        if label.item_id not in items_in_batch and len(items_in_batch) >= _ITEMS_PER_BATCH:
            yield batch
            batch, items_in_batch = [], set()
        batch.append(label)
        items_in_batch.add(label.item_id)
    if batch:
        yield batch


@dataclass
class _Texts:
    prompt: dict[int, str]  # item id -> prompt text
    slots: dict[int, list[int]]  # item id -> response ids in position order
    response: dict[int, str]
    tags: dict[int, list[str]]


def _load_texts(session: Session, item_ids: set[int]) -> _Texts:
    texts = _Texts({}, defaultdict(list), {}, {})
    for item_id, prompt, tags in session.execute(
        select(Item.id, Prompt.text, Item.tags)
        .join(Prompt, Prompt.id == Item.prompt_id)
        .where(Item.id.in_(item_ids))
    ).all():
        texts.prompt[item_id], texts.tags[item_id] = prompt, tags or []
    for item_id, response_id, text in session.execute(
        select(ItemResponse.item_id, ItemResponse.response_id, Response.text)
        .join(Response, Response.id == ItemResponse.response_id)
        .where(ItemResponse.item_id.in_(item_ids))
        .order_by(ItemResponse.item_id, ItemResponse.position)
    ).all():
        texts.slots[item_id].append(response_id)
        texts.response[response_id] = text
    return texts


def _unit_rows(
    unit: Unit, votes: list[Vote], texts: _Texts, opts: ExportOptions, summary: ExportSummary
) -> Iterator[dict[str, Any]]:
    agreed = consensus(votes)
    if agreed.n_votes < opts.min_votes:
        return
    if opts.min_agreement is not None and agreed.agreement < opts.min_agreement:
        summary.below_agreement_skipped += 1
        return
    if opts.aggregate == "majority":
        # The strength of a majority row: the mean strength of the votes that made it.
        backing = [v for v in votes if v.verdict == agreed.verdict]
        strengths = [v.strength for v in backing if v.strength]
        verdicts = [(agreed, sum(strengths) / len(strengths) if strengths else None, backing)]
    else:
        verdicts = [
            (Consensus(v.verdict, agreed.agreement, agreed.n_votes), v.strength, [v]) for v in votes
        ]
    prompt = texts.prompt[unit.item_id]
    for verdict, strength, voters in verdicts:
        if verdict.verdict is None or verdict.verdict == TIE:
            summary.ties_skipped += 1
            continue
        confident = [v.confidence for v in votes if v.verdict == verdict.verdict and v.confidence]
        sources = {v.source for v in voters}
        base = {
            "item_id": unit.item_id,
            # judge and constitution jobs voting together on a constitutional pair: "ai"
            "source": sources.pop() if len(sources) == 1 else "ai",
            "n_votes": verdict.n_votes,
            "label_ids": sorted(v.label_id for v in voters),
        }
        confidence = sum(confident) / len(confident) if confident else None
        if unit.lo == unit.hi:
            yield {
                "prompt": prompt,
                "completion": texts.response[unit.lo],
                "label": verdict.verdict == "up",
                **base,
                "agreement": verdict.agreement,
                "confidence": confidence,
            }
            continue
        winner = int(verdict.verdict)
        loser = unit.hi if winner == unit.lo else unit.lo
        yield {
            "prompt": prompt,
            "chosen": texts.response[winner],
            "rejected": texts.response[loser],
            **base,
            "agreement": verdict.agreement,
            "strength": None if strength is None else float(strength),
            "confidence": confidence,
        }


def _sft_rows(rows: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Per item, the responses that won every decided pair they were in (or were rated up)."""
    wins: dict[str, dict[str, Any]] = {}
    losers: set[str] = set()
    for row in rows:
        if "label" in row:
            if row["label"]:
                wins.setdefault(row["completion"], row)
            else:
                losers.add(row["completion"])
        else:
            wins.setdefault(row["chosen"], row)
            losers.add(row["rejected"])
    for text, row in wins.items():
        if text not in losers:
            yield {
                "prompt": row["prompt"],
                "completion": text,
                "item_id": row["item_id"],
                "source": row["source"],
            }


def export_rows(
    session: Session, project: Project, opts: ExportOptions, summary: ExportSummary
) -> Iterator[dict[str, Any]]:
    """Rows of the export, filling `summary` as it goes."""
    check_options(project, opts)
    for labels in _label_batches(session, project.id, opts):
        texts = _load_texts(session, {label.item_id for label in labels})
        annotated = {lb.item_id for lb in labels if lb.origin == "annotation"}
        human = {lb.item_id for lb in labels if lb.origin != "ai"}
        by_item: dict[int, dict[Unit, list[Vote]]] = defaultdict(lambda: defaultdict(list))
        for label in labels:
            if opts.tag is not None and opts.tag not in texts.tags[label.item_id]:
                continue
            # A dataset's own preference stands in only until annotators have labeled the item.
            if label.origin == "import" and label.item_id in annotated:
                continue
            # With source=both, an item's human labels stand; AI labels fill in the rest.
            if label.origin == "ai" and label.item_id in human:
                continue
            for vote in label_votes(
                label.kind,
                label.value,
                label.item_id,
                texts.slots[label.item_id],
                label.voter_id,
            ):
                vote = replace(vote, label_id=label.label_id)
                if label.origin == "ai":
                    vote = replace(vote, source=label.source, confidence=label.confidence)
                by_item[label.item_id][vote.unit].append(vote)
        for units in by_item.values():
            rows = [
                r
                for unit, votes in units.items()
                for r in _unit_rows(unit, votes, texts, opts, summary)
            ]
            out = list(_sft_rows(rows)) if opts.format == "sft" else rows
            summary.items += bool(out)
            summary.rows += len(out)
            yield from out


def write_export(
    session: Session, project: Project, opts: ExportOptions, out: IO[bytes], file_format: FileFormat
) -> ExportSummary:
    """Write the export to a binary file object and return what was written."""
    summary = ExportSummary()
    rows = export_rows(session, project, opts, summary)
    if file_format == "jsonl":
        for row in rows:
            out.write(orjson.dumps(row) + b"\n")
        return summary
    schema = SCHEMAS[opts.format]
    with pq.ParquetWriter(out, schema) as writer:
        chunk: list[dict[str, Any]] = []
        for row in rows:
            chunk.append(row)
            if len(chunk) >= 5000:
                writer.write_table(pa.Table.from_pylist(chunk, schema=schema))
                chunk = []
        writer.write_table(pa.Table.from_pylist(chunk, schema=schema))
    return summary
