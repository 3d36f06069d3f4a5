"""Opaque cursors for id-ordered listings."""

import base64

from service.errors import Invalid


def encode_cursor(last_id: int) -> str:
    """The cursor that continues after `last_id`."""
    return base64.urlsafe_b64encode(f"id:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    """The id a cursor continues after (0 for no cursor); Invalid for a malformed one."""
    if not cursor:
        return 0
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, value = raw.partition(":")
        last_id = int(value)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Invalid("malformed cursor", "cursor") from exc
    if prefix != "id" or not 0 <= last_id < 2**31:
        raise Invalid("malformed cursor", "cursor")
    return last_id


def next_cursor(ids: list[int], limit: int) -> str | None:
    """The cursor after a full page, or None when the page was the last."""
    return encode_cursor(ids[-1]) if len(ids) == limit and ids else None
