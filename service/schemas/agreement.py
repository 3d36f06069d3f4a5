"""Agreement report."""

from pydantic import BaseModel, Field


class AnnotatorAgreementOut(BaseModel):
    """One annotator against the majority of the others."""

    annotator: str
    n_labels: int = Field(description="Units (pairs or single responses) the annotator voted on.")
    n_compared: int = Field(description="Of those, units where the others had a clear majority.")
    agreement_with_majority: float | None


class PairKappaOut(BaseModel):
    """Cohen's kappa between two annotators."""

    annotator_a: str
    annotator_b: str
    n_units: int
    kappa: float | None


class AgreementOut(BaseModel):
    """Agreement among a project's annotators (imported labels are not counted).

    Units are response pairs (a ranking of K gives C(K,2) pairs) or single responses (binary);
    verdicts are the winner, tie, or up/down. Values are null where undefined.
    """

    n_labels: int
    n_annotators: int
    n_units: int
    n_units_multi: int = Field(description="Units voted on by two or more annotators.")
    cohen_kappa: float | None = Field(description="Cohen's kappa when exactly two annotators.")
    krippendorff_alpha: float | None = Field(description="Krippendorff's alpha (nominal).")
    mean_majority_agreement: float | None = Field(
        description="Mean share of votes for the majority verdict, over multi-annotator units."
    )
    annotators: list[AnnotatorAgreementOut]
    pairwise_kappa: list[PairKappaOut]
