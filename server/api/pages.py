"""The browser client: static files from web/ and the HTML entry pages."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

WEB_DIR = Path(__file__).resolve().parent.parent.parent / "web"

# URL path -> HTML file in web/. The token of /join travels in the fragment, never here.
PAGES: dict[str, str] = {
    "/": "index.html",
    "/join": "join.html",
    "/login": "login.html",
    "/enrol": "enrol.html",
    "/account": "account.html",
    "/admin": "admin.html",
}


def _page(filename: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(request: web.Request) -> web.StreamResponse:
        path = WEB_DIR / filename
        if not path.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(path, headers={"Content-Type": "text/html; charset=utf-8"})

    return handler


async def _favicon(request: web.Request) -> web.StreamResponse:
    path = WEB_DIR / "favicon.svg"
    if not path.is_file():
        raise web.HTTPNotFound()
    return web.FileResponse(path, headers={"Content-Type": "image/svg+xml"})


def setup_pages(app: web.Application) -> None:
    for url, filename in PAGES.items():
        app.router.add_get(url, _page(filename))
    app.router.add_get("/favicon.ico", _favicon)
    if WEB_DIR.is_dir():
        app.router.add_static("/static/", WEB_DIR, follow_symlinks=False, show_index=False)
