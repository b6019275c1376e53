"""The web page at `/`: upload a mix, follow the job, play and download the stems.

Plain HTML, CSS and JavaScript shipped in the package (`static/web/`), nothing from a CDN: it
works on a host without internet. The page talks to the same public API as any client
(`/methods`, `POST /separate`, the job's events and stems); spectrograms are drawn in the
browser from the decoded stems, so the API needs no plotting library.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

WEB_ASSETS = "/static/web"  # under the open /static/ prefix (security.PUBLIC_PREFIXES)
_STATIC = files("latsep.service") / "static" / "web"
# The page loads nothing but this API's own files; stems play and draw from blob: URLs.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'"
)


def install_web(app: FastAPI) -> None:
    """Serve the page at `/` and its scripts and styles under `/static/web/`."""
    app.mount(WEB_ASSETS, StaticFiles(directory=str(_STATIC)), name="web-assets")
    page = (_STATIC / "index.html").read_text(encoding="utf-8")

    @app.get("/", include_in_schema=False)
    def index() -> HTMLResponse:
        headers = {"Cache-Control": "no-cache", "Content-Security-Policy": CONTENT_SECURITY_POLICY}
        return HTMLResponse(page, headers=headers)
