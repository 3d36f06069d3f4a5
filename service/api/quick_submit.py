"""`POST /v1/assignments/{id}/labels` in its common case, answered below the framework.

Submits are the requests annotators make most. FastAPI's dependency solving, validation and
serialisation, with SQLAlchemy's execution, were two thirds of a submit's time. This ASGI
layer answers a submit itself when everything about it is plain:
- the API key is a live one (from the key cache, or looked up here and cached);
- the id is a plain integer in range;
- the JSON body is a pairwise or binary label that the route's own schema takes in strict
  mode, as it is, without coercion;
- the assignment is a live lease of the caller (`domain.quick_submit`).

Anything else goes on, untouched and body included, to the route in `routes/assignments.py`:
an unknown or revoked key, a body the schema would coerce or refuse, a listwise label, a retry,
an expired lease. That route stays the endpoint's definition, its OpenAPI entry and its errors.
The answer is the route's: 201 with the `LabelOut` the route would send.
"""

import re

from pydantic import TypeAdapter, ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.presenters import label_out
from service.api.routes.assignments import label_input
from service.domain.auth import KeyCache, Principal, hash_key
from service.domain.labels import LabelInput
from service.domain.quick_submit import QUICK_KINDS, QuickSubmit
from service.schemas.labels import LabelIn

_PATH = re.compile(r"/v1/assignments/([1-9][0-9]{0,9})/labels")
_MAX_ID = 2**31 - 1
_MAX_IDEMPOTENCY_KEY = 200
_LABEL = TypeAdapter[LabelIn](LabelIn)


async def _key_owner(cache: KeyCache, quick: QuickSubmit, key_hash: str) -> Principal | None:
    """The key's owner: from the cache, else looked up here and cached, as the route does.

    Looking it up here keeps a key's re-check (every ARBITER_AUTH_CACHE_SECONDS) off the
    route, whose full request handling would otherwise be each key's slowest submit.
    """
    user = cache.get(key_hash)
    if user is None:
        generation = cache.generation
        user = await quick.key_owner(key_hash)
        if user is not None:
            cache.put(key_hash, user, generation)
    return user


def _route_path(scope: Scope) -> str:
    """The path the router matches: without the app's `root_path` (as Starlette routes)."""
    path: str = scope["path"]
    root_path: str = scope.get("root_path", "")
    if root_path and path.startswith(root_path + "/"):
        return path[len(root_path) :]
    return path


def _plain_label(body: bytes) -> LabelInput | None:
    """The label, if the route's schema takes the body strictly; None to let the route say."""
    try:
        label = label_input(_LABEL.validate_json(body, strict=True))
    except ValidationError:
        return None
    return label if label.kind in QUICK_KINDS else None


def _headers(scope: Scope) -> dict[bytes, bytes] | None:
    """The request's headers, None when one we read is given twice (the route decides)."""
    headers: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        if name in headers and name in (b"authorization", b"idempotency-key", b"content-type"):
            return None
        headers[name] = value
    return headers


def _json_content_type(value: bytes | None) -> bool:
    """True for `application/json` (parameters aside), which the route reads as JSON.

    Without a Content-Type the route answers 422 (FastAPI's strict content type); that and
    the rarer JSON types (`application/*+json`) are left to it.
    """
    return value is not None and value.split(b";", 1)[0].strip().lower() == b"application/json"


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body; None when the client went away first."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replaying(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands the app the body read already, then the client's messages."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


class QuickSubmitRoute:
    """ASGI middleware: common-case submits here, every other request to the app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        match = _PATH.fullmatch(_route_path(scope))
        quick: QuickSubmit | None = getattr(scope["app"].state, "quick_submit", None)
        if match is None or quick is None:
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        if body is None:
            return
        answer = await self._answer(scope, quick, int(match[1]), body)
        if answer is None:
            await self.app(scope, _replaying(body, receive), send)
            return
        # The route's JSONResponse headers, in its order.
        headers = [(b"content-length", b"%d" % len(answer)), (b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 201, "headers": headers})
        await send({"type": "http.response.body", "body": answer})

    async def _answer(
        self, scope: Scope, quick: QuickSubmit, assignment_id: int, body: bytes
    ) -> bytes | None:
        """The response body of a common-case submit, once stored; None to pass it on."""
        headers = _headers(scope)
        if assignment_id > _MAX_ID or headers is None:
            return None
        if not _json_content_type(headers.get(b"content-type")):
            return None
        scheme, _, key = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        key = key.strip()  # as FastAPI's HTTPBearer reads it
        if not key or scheme.lower() != "bearer":
            return None
        user = await _key_owner(scope["app"].state.key_cache, quick, hash_key(key))
        if user is None:
            return None
        idempotency_key = headers.get(b"idempotency-key")
        if idempotency_key is not None and len(idempotency_key) > _MAX_IDEMPOTENCY_KEY:
            return None
        label = _plain_label(body)
        if label is None:
            return None
        stored = await quick.submit(
            assignment_id,
            (user.user_id, user.name),
            label,
            None if idempotency_key is None else idempotency_key.decode("latin-1"),
        )
        return None if stored is None else label_out(stored).model_dump_json().encode()
