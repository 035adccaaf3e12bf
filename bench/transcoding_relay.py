"""Baseline for the forwarding-vs-transcoding figure: a 2-party relay built the usual aiortc way.

Each participant's incoming track is decoded by aiortc and handed to the other participant
through `aiortc.contrib.media.MediaRelay`; the other's sender re-encodes it (VP8 / Opus). Same
media messages as the SFU (`offer` -> `answer` with `tracks`), over `GET /relay/{room}/ws`
(first message `{"type": "join", "name": ..., "peer": ...}`), so the same Python client drives both.

    python -m bench.transcoding_relay --port 8099
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamTrack

from server.sfu import aiortc_hook


@dataclass
class Member:
    name: str
    peer: str  # the other participant's name, as the client announced it
    pc: RTCPeerConnection
    incoming: dict[str, asyncio.Future[MediaStreamTrack]] = field(default_factory=dict)


@dataclass
class Room:
    members: dict[str, Member] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def other_track(self, me: str, kind: str) -> tuple[str, MediaStreamTrack]:
        while True:
            for name, member in self.members.items():
                if name != me:
                    return name, await member.incoming[kind]
            self.changed.clear()
            await self.changed.wait()


class RelayedTrack(MediaStreamTrack):
    """What `member` receives: the other member's decoded track, through the MediaRelay."""

    def __init__(self, kind: str, room: Room, member: str, relay: MediaRelay) -> None:
        super().__init__()
        self.kind = kind
        self._room, self._member, self._relay = room, member, relay
        self._inner: MediaStreamTrack | None = None

    async def recv(self) -> Any:
        if self._inner is None:
            _name, track = await self._room.other_track(self._member, self.kind)
            self._inner = self._relay.subscribe(track)
        return await self._inner.recv()


async def relay_ws(request: web.Request) -> web.WebSocketResponse:
    rooms: dict[str, Room] = request.app["rooms"]
    relay: MediaRelay = request.app["relay"]
    room = rooms.setdefault(request.match_info["room"], Room())
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    member: Member | None = None
    try:
        async for msg in ws:
            if msg.type is not WSMsgType.TEXT:
                continue
            message = msg.json()
            if message.get("type") == "join" and member is None:
                loop = asyncio.get_running_loop()
                pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
                member = Member(str(message["name"]), str(message.get("peer", "other")), pc,
                                {"audio": loop.create_future(), "video": loop.create_future()})
                room.members[member.name] = member
                room.changed.set()

                @member.pc.on("track")
                def on_track(track: MediaStreamTrack, member: Member = member) -> None:
                    future = member.incoming[track.kind]
                    if not future.done():
                        future.set_result(track)
            elif message.get("type") == "offer" and member is not None:
                await member.pc.setRemoteDescription(RTCSessionDescription(message["sdp"], "offer"))
                for kind in ("audio", "video"):
                    member.pc.addTrack(RelayedTrack(kind, room, member.name, relay))
                await member.pc.setLocalDescription(await member.pc.createAnswer())
                tracks = [{"mid": t.mid, "participant_id": member.peer, "kind": t.kind}
                          for t in member.pc.getTransceivers()]
                await ws.send_json({"v": 1, "type": "answer", "sdp": member.pc.localDescription.sdp,
                                    "tracks": tracks})
    finally:
        if member is not None:
            room.members.pop(member.name, None)
            await member.pc.close()
    return ws


async def healthz(_request: web.Request) -> web.Response:
    return web.Response(text="ok")


def main() -> None:
    parser = argparse.ArgumentParser(description="aiortc MediaRelay transcoding baseline")
    parser.add_argument("--port", type=int, default=8099)
    args = parser.parse_args()
    aiortc_hook.restrict_host_addresses(["127.0.0.1"])
    app = web.Application()
    app["rooms"] = {}
    app["relay"] = MediaRelay()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/relay/{room}/ws", relay_ws)
    with contextlib.suppress(KeyboardInterrupt):
        web.run_app(app, host="127.0.0.1", port=args.port, print=None)


if __name__ == "__main__":
    main()
