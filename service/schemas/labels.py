"""Label submissions: a discriminated union on `kind`, one shape per feedback kind."""

from typing import Annotated, Literal

from pydantic import Field

from service.schemas.common import RequestBody

Rationale = Annotated[str | None, Field(default=None, max_length=20_000)]


class PairwiseLabelIn(RequestBody):
    """A vs B: which response is better, or a tie, with an optional strength 1-3."""

    kind: Literal["pairwise"]
    choice: Literal["a", "b", "tie"]
    strength: int | None = Field(default=None, ge=1, le=3, description="1 slight .. 3 strong.")
    rationale: Rationale = None


class ListwiseLabelIn(RequestBody):
    """A full ranking of the item's responses, best first; a nested list is a tie group."""

    kind: Literal["listwise"]
    ranking: list[int | list[int]] = Field(
        min_length=1, max_length=100, description="Response ids best first, e.g. [12, [14, 13]]."
    )
    rationale: Rationale = None


class BinaryLabelIn(RequestBody):
    """Thumbs up or down on a single response."""

    kind: Literal["binary"]
    rating: Literal["up", "down"]
    rationale: Rationale = None


LabelIn = Annotated[PairwiseLabelIn | ListwiseLabelIn | BinaryLabelIn, Field(discriminator="kind")]
