"""Domain objects to response schemas, shared by the routes."""

from service.domain.items import ItemView
from service.schemas.items import ItemOut, LabelOut, ResponseOut


def item_out(view: ItemView) -> ItemOut:
    """An item as the API shows it."""
    item = view.item
    return ItemOut(
        id=item.id,
        project_id=item.project_id,
        kind=item.kind,
        prompt=view.prompt,
        responses=[
            ResponseOut(id=r.id, position=n, text=r.text, source=r.source)
            for n, r in enumerate(view.responses)
        ],
        external_id=item.external_id,
        tags=item.tags or [],
        metadata=item.metadata_ or {},
        label_count=item.label_count,
        is_complete=item.is_complete,
        created_at=item.created_at,
        labels=[
            LabelOut(
                id=label.id,
                item_id=label.item_id,
                assignment_id=label.assignment_id,
                annotator=name,
                kind=label.kind,
                value=label.value,
                rationale=label.rationale,
                origin=label.origin.value,
                created_at=label.created_at,
            )
            for label, name in view.labels
        ],
    )
