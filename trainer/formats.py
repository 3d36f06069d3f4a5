"""Pure data shaping: export rows to TRL datasets, prompt-disjoint splits, KTO balance."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets

from trainer.config import TrainKind

log = logging.getLogger(__name__)

COLUMNS: dict[TrainKind, tuple[str, ...]] = {
    "rm": ("prompt", "chosen", "rejected"),
    "dpo": ("prompt", "chosen", "rejected"),
    "kto": ("prompt", "completion", "label"),
}


class DataError(ValueError):
    """Rows that cannot train this kind of model."""


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """Rows of an Arbiter export (JSONL or Parquet)."""
    path = Path(path)
    if path.suffix == ".parquet":
        return list(datasets.load_dataset("parquet", data_files=str(path), split="train"))
    with path.open() as f:
        return [json.loads(line) for line in f if line.strip()]


def _bucket(prompt: str, seed: int) -> float:
    digest = hashlib.sha256(f"{seed}:{prompt}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_by_prompt(
    rows: list[dict[str, Any]], eval_fraction: float, seed: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Train and eval rows; all rows of one prompt fall on the same side."""
    train = [r for r in rows if _bucket(r["prompt"], seed) >= eval_fraction]
    held = [r for r in rows if _bucket(r["prompt"], seed) < eval_fraction]
    return train, held


def to_dataset(rows: Iterable[dict[str, Any]], kind: TrainKind) -> datasets.Dataset:
    """The columns TRL's trainer for `kind` takes."""
    columns = COLUMNS[kind]
    data = {c: [r[c] for r in rows] for c in columns}
    return datasets.Dataset.from_dict(data)


def check_rows(rows: list[dict[str, Any]], kind: TrainKind, min_rows: int = 4) -> None:
    """Refuse data this kind cannot train on."""
    columns = COLUMNS[kind]
    if rows and not all(c in rows[0] for c in columns):
        shape = (
            "prompt/completion/label (binary labels)" if kind == "kto" else "prompt/chosen/rejected"
        )
        raise DataError(f"{kind} trains on {shape} rows; these rows have {sorted(rows[0])}")
    if len(rows) < min_rows:
        raise DataError(f"{len(rows)} rows; {kind} needs at least {min_rows}")
    if kind == "kto" and len({bool(r["label"]) for r in rows}) < 2:
        raise DataError("kto needs both desirable and undesirable rows")


@dataclass(frozen=True)
class KTOBalance:
    """λ_D·n_D / λ_U·n_U, which the KTO paper advises keeping within [1, 4/3]."""

    ratio: float
    n_desirable: int
    n_undesirable: int

    @property
    def advised(self) -> bool:
        """Whether the ratio is within the paper's advice."""
        return 1.0 <= self.ratio <= 4 / 3


def kto_balance(
    rows: list[dict[str, Any]], desirable_weight: float, undesirable_weight: float
) -> KTOBalance:
    """The KTO weight balance of these rows, with a warning when outside [1, 4/3]."""
    n_d = sum(bool(r["label"]) for r in rows)
    n_u = len(rows) - n_d
    ratio = (desirable_weight * n_d) / (undesirable_weight * n_u) if n_u else float("inf")
    balance = KTOBalance(ratio, n_d, n_u)
    if not balance.advised:
        log.warning(
            "KTO balance λD·nD/λU·nU = %.3f (nD=%d, nU=%d) is outside [1, 4/3], as the KTO paper "
            "advises; adjust desirable_weight/undesirable_weight",
            ratio,
            n_d,
            n_u,
        )
    return balance
