"""The HTTP half of a Python participant: the real API of docs/api.md, exactly as the browser uses
it (CSRF double submit: GET /api/csrf, then `X-CSRF-Token` + `Origin` on every write; cookies
kept in the session's jar).

    api = await ApiClient.open(base_url)
    await api.login_staff(email, password, totp_secret)        # tc_session cookie
    cid = await api.create_consultation()
    link = await api.invite(cid)                               # https://host/join#<token>
    patient = await ApiClient.open(base_url)
    await patient.join(token_from_link(link), "Ann")           # tc_participant cookie
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pyotp

STEP_S = 30


class ApiError(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body[:300]}")
        self.status = status
        self.body = body


def token_from_link(link: str) -> str:
    """The secret of an invite or enrolment link lives in its fragment."""
    if "#" not in link:
        raise ValueError("the link has no fragment")
    return link.split("#", 1)[1]


def totp_code(secret: str, at: float | None = None) -> str:
    return str(pyotp.TOTP(secret).at(int(time.time() if at is None else at)))


STEP_MARGIN_S = 5.0  # a code of the previous step is sent only while the current one has this left


def step_has_margin(margin_s: float = STEP_MARGIN_S) -> bool:
    """True while the current TOTP step has `margin_s` or more left. A code of the previous
    step is accepted only while the server is still in this step: sent near its end, it can
    arrive in the next and be refused (seen in CI under load)."""
    return STEP_S - time.time() % STEP_S >= margin_s


class ApiClient:
    """One browser-like HTTP session (its own cookie jar) against `base_url`."""

    def __init__(self, base_url: str, session: aiohttp.ClientSession) -> None:
        self.base_url = base_url.rstrip("/")
        self.origin = self.base_url
        self.session = session
        self.csrf_token = ""

    @classmethod
    async def open(cls, base_url: str) -> ApiClient:
        session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True),
                                        timeout=aiohttp.ClientTimeout(total=30))
        client = cls(base_url, session)
        try:
            await client.refresh_csrf()
        except BaseException:
            await session.close()
            raise
        return client

    async def close(self) -> None:
        await self.session.close()

    @property
    def write_headers(self) -> dict[str, str]:
        return {"Origin": self.origin, "X-CSRF-Token": self.csrf_token}

    async def refresh_csrf(self) -> None:
        async with self.session.get(f"{self.base_url}/api/csrf") as response:
            if response.status != 200:
                raise ApiError(response.status, await response.text())
            self.csrf_token = str((await response.json())["csrf_token"])

    async def post(self, path: str, body: dict[str, Any] | None = None, expect: int = 200) -> Any:
        async with self.session.post(f"{self.base_url}{path}", json=body, headers=self.write_headers) as r:
            text = await r.text()
            if r.status != expect:
                raise ApiError(r.status, text)
            return await r.json() if text else None

    async def get(self, path: str) -> Any:
        async with self.session.get(f"{self.base_url}{path}") as r:
            if r.status != 200:
                raise ApiError(r.status, await r.text())
            return await r.json()

    # -- staff ----------------------------------------------------------------------------

    async def enrol(self, enrol_link: str, password: str) -> str:
        """Finish an enrolment link (from `teleconsult user add`); return the TOTP secret.

        The code of the previous 30 s step is used, so a login right after gets a fresh one."""
        started = await self.post("/api/enrol/start", {"token": token_from_link(enrol_link)})
        secret = str(started["totp_secret"])
        deadline = time.monotonic() + STEP_MARGIN_S + 1
        while not step_has_margin() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)  # poll interval of a bounded wait on the clock
        await self.post("/api/enrol/finish", {"enrolment_id": started["enrolment_id"],
                                               "password": password,
                                               "code": totp_code(secret, time.time() - STEP_S)})
        return secret

    async def login_staff(self, email: str, password: str, totp_secret: str,
                          at: float | None = None) -> dict[str, Any]:
        """Password, then the TOTP code of the step at `at` (default now: the server's clock)."""
        await self.post("/api/login", {"email": email, "password": password})
        body = await self.post("/api/login/mfa", {"code": totp_code(totp_secret, at)})
        await self.refresh_csrf()
        return dict(body["account"])

    async def create_consultation(self, **fields: Any) -> str:
        return str((await self.post("/api/consultations", fields, expect=201))["id"])

    async def invite(self, cid: str, role: str = "patient") -> str:
        return str((await self.post(f"/api/consultations/{cid}/invites", {"role": role}, expect=201))["link"])

    async def room_token(self, cid: str) -> str:
        return str((await self.post(f"/api/consultations/{cid}/room-token"))["room_token"])

    async def admit(self, cid: str, participant_id: str) -> None:
        await self.post(f"/api/consultations/{cid}/participants/{participant_id}/admit", expect=204)

    async def end(self, cid: str) -> None:
        await self.post(f"/api/consultations/{cid}/end", expect=204)

    # -- patients and guests --------------------------------------------------------------

    async def join(self, token: str, display_name: str, device_check: str = "skipped") -> dict[str, Any]:
        body = await self.post("/api/join", {"token": token, "display_name": display_name,
                                             "device_check": device_check}, expect=201)
        return dict(body)

    async def leave(self) -> None:
        await self.post("/api/participant/leave", expect=204)
