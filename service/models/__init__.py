"""Arbiter's tables, one module per aggregate; importing this registers them all."""

from service.models.imports import Import
from service.models.items import Item, ItemResponse, Prompt, Response
from service.models.labels import Assignment, AssignmentStatus, HumanLabel, LabelOrigin
from service.models.projects import FeedbackKind, Project
from service.models.users import ROLE_RANK, ApiKey, Role, User

__all__ = [
    "ROLE_RANK",
    "ApiKey",
    "Assignment",
    "AssignmentStatus",
    "FeedbackKind",
    "HumanLabel",
    "Import",
    "Item",
    "ItemResponse",
    "LabelOrigin",
    "Project",
    "Prompt",
    "Response",
    "Role",
    "User",
]
