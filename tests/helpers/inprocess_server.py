"""The real application (`create_app`) served in-process, on a free port, by a background
thread with its own event loop — so a test (async or Playwright's sync API) reaches the live
app objects: the SFU room's frame tap, the hub, the store. The app's own composition root
(server/api/services.py) runs `setup_media_runtime` once for the process, as in production.

    with inprocess_server(tmp_path, e2ee_policy="required") as server:
        creds = server.create_doctor("dr@example.test")      # enrolled; log in with ApiClient
        ... server.base_url ...
        server.set_frame_tap(cid, tap)     # tap(publisher_id, label, data) -> data, on the server loop
        server.call(coro_factory)          # run a coroutine on the server's loop, get its result
        server.http_bodies                 # every request and response body the app saw
        server.store_dump()                # every row of every table of the SQLite store (bytes)

`settings` overrides are Settings fields (e.g. e2ee_policy="preferred"); the store is SQLite
in tmp_path/data; the recordings go to tmp_path/recordings.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import secrets
import sqlite3
import threading
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from client.provision import StaffCredentials
from server.api.app import create_app
from server.api.keys import CLOCK, HUB, STORE
from server.config import Settings
from server.sfu.forwarder import FrameTap
from server.sfu.room import SfuRoom
from server.signalling.media_gateway import SfuMediaGateway
from tests.helpers.auth_helpers import create_staff
from tests.helpers.server_process import free_port

T = TypeVar("T")


@dataclasses.dataclass
class InProcessServer:
    app: web.Application
    settings: Settings
    loop: asyncio.AbstractEventLoop
    http_bodies: list[bytes]

    @property
    def base_url(self) -> str:
        return self.settings.base_url

    def call(self, factory: Callable[[], Awaitable[T]], timeout_s: float = 30) -> T:
        """Run `factory()` on the server's loop and return its result (from any thread)."""
        async def run() -> T:
            return await factory()

        future: Future[T] = asyncio.run_coroutine_threadsafe(run(), self.loop)
        return future.result(timeout_s)

    async def acall(self, factory: Callable[[], Awaitable[T]], timeout_s: float = 30) -> T:
        """`call` from a coroutine on another loop, without blocking that loop."""
        async def run() -> T:
            return await factory()

        future = asyncio.run_coroutine_threadsafe(run(), self.loop)
        return await asyncio.wait_for(asyncio.wrap_future(future), timeout_s)

    def room(self, cid: str) -> SfuRoom | None:
        media: Any = self.app[HUB].media
        while not isinstance(media, SfuMediaGateway) and hasattr(media, "inner"):
            media = media.inner
        return media.rooms.get(cid) if isinstance(media, SfuMediaGateway) else None

    def set_frame_tap(self, cid: str, tap: FrameTap | None) -> None:
        """Install (None: remove) the SFU frame tap of a consultation's room (it must exist)."""
        async def install() -> None:
            room = self.room(cid)
            if room is None:
                raise AssertionError(f"no media room for {cid}")
            room.frame_tap = tap

        self.call(install)

    def create_doctor(self, email: str, display_name: str = "Dr Test") -> StaffCredentials:
        password = secrets.token_urlsafe(18)

        async def make() -> str:
            _account, secret = await create_staff(
                self.app[STORE], self.app[CLOCK], self.settings, email=email,
                role="doctor", password=password, display_name=display_name)
            return secret

        return StaffCredentials(email, password, self.call(make))

    def store_dump(self) -> list[bytes]:
        """Every value of every row of every table of the SQLite store, as bytes."""
        out: list[bytes] = []
        with sqlite3.connect(self.settings.sqlite_path) as db:
            tables = [r[0] for r in db.execute("select name from sqlite_master where type='table'")]
            for table in tables:
                for row in db.execute(f'select * from "{table}"'):  # noqa: S608 (own test db)
                    out += [v if isinstance(v, bytes) else str(v).encode() for v in row]
        return out


@contextmanager
def inprocess_server(tmp_path: Path, **overrides: Any) -> Iterator[InProcessServer]:
    from server.clock import SystemClock

    fields: dict[str, Any] = {
        "host": "127.0.0.1", "port": free_port(), "data_dir": tmp_path / "data",
        "recordings_dir": tmp_path / "recordings", "ice_host_addresses": ("127.0.0.1",),
        "e2ee_policy": "off", "media_path": os.environ.get("TELECONSULT_TEST_MEDIA_PATH", "packet"),
        **overrides}
    settings = dataclasses.replace(Settings(), **fields)
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    settings.recordings_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    loop = asyncio.new_event_loop()
    clock = SystemClock()
    app = create_app(settings, clock=clock)
    bodies: list[bytes] = []

    @web.middleware
    async def capture(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                      ) -> web.StreamResponse:
        if request.can_read_body:
            bodies.append(await request.read())
        response = await handler(request)
        if isinstance(response, web.Response) and isinstance(response.body, bytes):
            bodies.append(response.body)
        return response

    app.middlewares.insert(0, capture)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    ready = threading.Event()
    stop: asyncio.Event | None = None
    failure: list[BaseException] = []

    async def serve() -> None:
        nonlocal stop
        stop = asyncio.Event()
        try:
            await runner.setup()
            await web.TCPSite(runner, settings.host, settings.port).start()
        except BaseException as exc:
            failure.append(exc)
            ready.set()
            raise
        ready.set()
        await stop.wait()
        await runner.cleanup()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),),
                              name="inprocess-server", daemon=True)
    thread.start()
    if not ready.wait(30) or failure:
        raise AssertionError(f"in-process server did not start: {failure}")
    try:
        yield InProcessServer(app, settings, loop, bodies)
    finally:
        assert stop is not None
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        loop.close()
