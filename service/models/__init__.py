"""Arbiter's tables, one module per aggregate; importing this registers them all."""

from service.models.constitutions import (
    ChainStatus,
    Constitution,
    Principle,
    RevisionChain,
    RevisionStep,
    StepOutcome,
)
from service.models.imports import Import
from service.models.items import Item, ItemResponse, Prompt, Response
from service.models.jobs import (
    ACTIVE_JOB_STATUSES,
    Job,
    JobKind,
    JobStatus,
    WorkStatus,
    WorkUnit,
)
from service.models.judgments import AIJudgment, AILabel
from service.models.labels import Assignment, AssignmentStatus, HumanLabel, LabelOrigin
from service.models.projects import FeedbackKind, Project
from service.models.users import ROLE_RANK, ApiKey, Role, User

__all__ = [
    "ACTIVE_JOB_STATUSES",
    "ROLE_RANK",
    "AIJudgment",
    "AILabel",
    "ApiKey",
    "Assignment",
    "AssignmentStatus",
    "ChainStatus",
    "Constitution",
    "FeedbackKind",
    "HumanLabel",
    "Import",
    "Item",
    "ItemResponse",
    "Job",
    "JobKind",
    "JobStatus",
    "LabelOrigin",
    "Principle",
    "Project",
    "Prompt",
    "Response",
    "RevisionChain",
    "RevisionStep",
    "Role",
    "StepOutcome",
    "User",
    "WorkStatus",
    "WorkUnit",
]
