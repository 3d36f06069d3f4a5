"""Judge quality reports."""

from pydantic import BaseModel, Field


class HumanAgreementOut(BaseModel):
    """The judge's verdicts against the human majority, on units labeled by both."""

    n_units: int
    accuracy: float | None = Field(description="Share of units where the verdicts match.")
    cohen_kappa: float | None


class JudgeReportOut(BaseModel):
    """One judge job's quality figures; null where there is nothing to measure."""

    job_id: int
    judge_model: str
    judge_backend: str
    template: str
    n_items: int
    n_judgments: int = Field(description="Verdicts read, one per order shown.")
    first_position_win_rate: float | None = Field(
        description="Before debiasing: share of orders where the response shown first won "
        "(0.5 = no position bias)."
    )
    mean_p_first: float | None = Field(description="Mean P(first shown wins) before debiasing.")
    position_consistency_rate: float | None = Field(
        description="Share of pairs whose two orders prefer the same response."
    )
    tie_rate: float | None = Field(description="Share of judged pairs that came out a tie.")
    human_agreement: HumanAgreementOut


class JudgeReportsOut(BaseModel):
    """Quality of each judge job of a project."""

    judges: list[JudgeReportOut]
