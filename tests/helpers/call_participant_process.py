"""A patient in its own OS process, for the tests that SIGKILL it mid-call
(tests/test_call_e2e_vanished.py): joins from an invite link through the real HTTP + WebSocket
API (client), publishes pre-encoded video and audio, and stays in the call until killed.
Prints one JSON line per step on stdout: joined {participant_id}, welcome {state}, connected.

    python -m tests.helpers.call_participant_process <base_url> <invite_link> <display_name>
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from client.api import ApiClient, token_from_link
from client.media import PreparedMedia
from client.participant import ConsultationClient
from client.peer import MediaOptions, MediaPeer


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


async def main(base: str, link: str, name: str) -> None:
    media = PreparedMedia.build(seconds=1.0, fps=15, width=320, height=240, gop=15, bitrate=300_000)
    api = await ApiClient.open(base)
    joined = await api.join(token_from_link(link), name)
    emit("joined", participant_id=joined["participant_id"])
    client = ConsultationClient(api, str(joined["consultation_id"]), MediaPeer(name, MediaOptions(prepared=media)))
    await client.connect()
    emit("welcome", state=client.state)
    await client.wait_in_call(60)
    await client.media.wait_connected(30)
    emit("connected")
    await asyncio.Event().wait()  # in the call until the test kills this process


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
