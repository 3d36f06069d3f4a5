"""Domain views to response schemas, shared by the routes."""

from service.domain.assignment import Lease
from service.domain.items import ItemView, LabelView
from service.schemas.items import AssignmentOut, ItemOut, LabelOut, ResponseOut


def label_out(label: LabelView) -> LabelOut:
    """A label as the API shows it."""
    return LabelOut(
        id=label.id,
        item_id=label.item_id,
        assignment_id=label.assignment_id,
        annotator=label.annotator,
        kind=label.kind,
        value=label.value,
        rationale=label.rationale,
        origin=label.origin,
        created_at=label.created_at,
    )


def item_out(view: ItemView) -> ItemOut:
    """An item as the API shows it."""
    return ItemOut(
        id=view.id,
        project_id=view.project_id,
        kind=view.kind,
        prompt=view.prompt,
        responses=[
            ResponseOut(id=r.id, position=n, text=r.text, source=r.source)
            for n, r in enumerate(view.responses)
        ],
        external_id=view.external_id,
        tags=view.tags,
        metadata=view.metadata,
        label_count=view.label_count,
        is_complete=view.is_complete,
        created_at=view.created_at,
        labels=[label_out(label) for label in view.labels],
    )


def assignment_out(lease: Lease) -> AssignmentOut:
    """An assignment with its item, as the annotator sees it."""
    return AssignmentOut(
        id=lease.id,
        project_id=lease.project_id,
        status=lease.status.value,
        leased_at=lease.leased_at,
        lease_expires_at=lease.lease_expires_at,
        instructions=lease.instructions,
        item=item_out(lease.item),
    )
