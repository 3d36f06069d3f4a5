"""The one place that maps errors to HTTP status codes and `{code, message, field}` bodies."""

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.domain.imports import InvalidImport
from service.errors import AppError, Conflict, Forbidden, Invalid, NotFound, Unauthorized
from service.schemas.common import ErrorBody
from service.schemas.imports import ImportReport

logger = logging.getLogger(__name__)

STATUS = {NotFound: 404, Conflict: 409, Invalid: 422, Forbidden: 403, Unauthorized: 401}


def _body(code: str, message: str, field: str | None, **extra: Any) -> dict[str, Any]:
    return {"code": code, "message": message, "field": field, **extra}


def _field(error: Any) -> str:
    """The dotted field an error is about ("body" for a body that is not JSON at all)."""
    loc = tuple(error.get("loc", ()))
    if error.get("type") == "json_invalid" or not loc:
        return "body"
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or str(loc[0])


async def app_error(_: Request, exc: Exception) -> JSONResponse:
    """Domain errors: their status from STATUS, their code and field as raised."""
    assert isinstance(exc, AppError)
    status = next((s for cls, s in STATUS.items() if isinstance(exc, cls)), 400)
    extra: dict[str, Any] = {}
    if isinstance(exc, InvalidImport):
        extra["report"] = ImportReport.model_validate(exc.report, from_attributes=True).model_dump(
            mode="json"
        )
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(
        _body(exc.code, exc.message, exc.field, **extra), status_code=status, headers=headers
    )


async def validation_error(_: Request, exc: Exception) -> JSONResponse:
    """Request validation: 422 naming the first field at fault, all errors listed."""
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    first = errors[0] if errors else {"loc": ("body",), "msg": "invalid request"}
    field = _field(first)
    details = [{"field": _field(e), "message": e.get("msg", "")} for e in errors]
    return JSONResponse(
        _body("validation_error", f"{field}: {first.get('msg')}", field, errors=details),
        status_code=422,
    )


async def http_error(_: Request, exc: Exception) -> JSONResponse:
    """Framework errors (unknown route, wrong method) in the same body shape."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400:
        # FastAPI's "error parsing the body" (e.g. bytes that are not UTF-8): invalid input.
        return JSONResponse(_body("validation_error", str(exc.detail), "body"), status_code=422)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return JSONResponse(
        _body(code, str(exc.detail), None), status_code=exc.status_code, headers=exc.headers
    )


async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    """A bug: logged with its traceback, answered with a plain 500."""
    logger.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(_body("internal", "internal server error", None), status_code=500)


def install(app: FastAPI) -> None:
    """Register the handlers on an app."""
    app.add_exception_handler(AppError, app_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected_error)


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Missing or invalid API key"},
    403: {"model": ErrorBody, "description": "The caller's role does not allow this"},
    404: {"model": ErrorBody, "description": "Unknown id (or not yours)"},
    409: {"model": ErrorBody, "description": "Conflicts with the current state"},
    422: {"model": ErrorBody, "description": "Invalid input; `field` names the culprit"},
}
