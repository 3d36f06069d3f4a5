"""The web pages for annotators and operators: static HTML and JavaScript, served by the app.

No build step and nothing from a CDN: the pages are files in `pages/` and `static/`, and they do
everything through the same JSON API as any client (with the key a person signs in with,
kept in the browser tab's session storage). Every page is sent with a Content-Security-Policy
that allows only this origin's scripts and styles, a second guard (after rendering imported
text as text) against script injection.
"""

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from service.errors import NotFound

STATIC = Path(__file__).resolve().parent / "static"  # scripts and styles, served as they are
PAGES_DIR = Path(__file__).resolve().parent / "pages"  # HTML, served only with the headers below
PAGES = {"": "signin.html", "annotate": "annotate.html"}
# The operators' pages are one shell (pages/operator.html) with their own title and script.
OPERATOR_PAGES = {"projects": "Projects", "project": "Project", "jobs": "Jobs"}
_SHELL = (PAGES_DIR / "operator.html").read_text()
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
        "form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

router = APIRouter(include_in_schema=False)


@router.get("/")
async def home() -> RedirectResponse:
    """The pages start at the sign-in page."""
    return RedirectResponse("/ui/")


@router.get("/ui")
async def ui_root() -> RedirectResponse:
    """/ui is /ui/."""
    return RedirectResponse("/ui/")


@router.get("/ui/{page}")
@router.get("/ui/", name="signin")
async def page(page: str = "") -> Response:
    """A page of the web interface."""
    if page in OPERATOR_PAGES:
        html = _SHELL.format(title=OPERATOR_PAGES[page], script=page)
        return HTMLResponse(html, headers=SECURITY_HEADERS)
    if page not in PAGES:
        raise NotFound(f"no page {page!r}", "page")
    return FileResponse(PAGES_DIR / PAGES[page], media_type="text/html", headers=SECURITY_HEADERS)


def install(app: FastAPI) -> None:
    """Serve the pages and their assets on the app."""
    app.include_router(router)
    app.mount("/ui/static", StaticFiles(directory=STATIC), name="ui-static")
