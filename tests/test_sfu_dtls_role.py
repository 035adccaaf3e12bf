"""A patient answering the server's re-offer the way Firefox 153 does still connects.

Firefox answers a server re-offer (`a=setup:actpass`) with `passive` on the m-sections it had
and `active` on the new bundled ones, its transport staying the DTLS server. aiortc applied the
last m-section's role to the shared transport, so when that answer arrived before ICE completed
the server became a DTLS server too and the connection never connected (server/sfu/dtls_setup.py).
Here a Python patient answers like Firefox and its ICE checks wait until it has answered the
server's first offer — the order seen in the failing Firefox runs — so the race is not left to
luck: without the fix this test times out with ICE connected and DTLS never done.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from typing import Any

import pytest

from server.sfu.dtls_setup import unify_bundled_setup
from server.sfu.messages import AnswerMessage, OfferMessage
from tests.helpers.sfu_peers import LocalPeer, close_all, connect_all, new_room
from tests.helpers.waiting import wait_for_condition

FIREFOX_REANSWER = (
    "v=0\r\no=mozilla...THIS_IS_SDPARTA-99.0 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
    "a=group:BUNDLE 0 1 2 3\r\na=msid-semantic:WMS *\r\n"
    "m=audio 53474 UDP/TLS/RTP/SAVPF 109\r\na=sendonly\r\na=mid:0\r\na=rtcp-mux\r\na=setup:passive\r\n"
    "m=video 9 UDP/TLS/RTP/SAVPF 120\r\na=sendonly\r\na=mid:1\r\na=rtcp-mux\r\na=setup:passive\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 109\r\na=recvonly\r\na=mid:2\r\na=rtcp-mux\r\na=setup:active\r\n"
    "m=video 9 UDP/TLS/RTP/SAVPF 120\r\na=recvonly\r\na=mid:3\r\na=rtcp-mux\r\na=setup:active\r\n"
)


def setups(sdp_text: str) -> list[str]:
    return re.findall(r"^a=setup:(\S+)\r?$", sdp_text, flags=re.MULTILINE)


def test_bundled_sections_take_the_tagged_sections_setup() -> None:
    fixed = unify_bundled_setup(FIREFOX_REANSWER)
    assert setups(fixed) == ["passive"] * 4
    without_setup = re.compile(r"^a=setup:\S+\r\n", flags=re.MULTILINE)
    assert without_setup.sub("", fixed) == without_setup.sub("", FIREFOX_REANSWER)  # nothing else moved


def test_sections_outside_the_bundle_and_unbundled_answers_are_left_alone() -> None:
    partial = FIREFOX_REANSWER.replace("a=group:BUNDLE 0 1 2 3", "a=group:BUNDLE 0 1 2")
    assert setups(unify_bundled_setup(partial)) == ["passive", "passive", "passive", "active"]
    unbundled = FIREFOX_REANSWER.replace("a=group:BUNDLE 0 1 2 3\r\n", "")
    assert unify_bundled_setup(unbundled) == unbundled
    no_tagged_setup = FIREFOX_REANSWER.replace("a=mid:0\r\na=rtcp-mux\r\na=setup:passive", "a=mid:0\r\na=rtcp-mux")
    assert unify_bundled_setup(no_tagged_setup) == no_tagged_setup


class FirefoxLikePatient(LocalPeer):
    """Answers server offers as Firefox 153 does (`a=setup:active` on the m-sections that are
    new in that offer, its own DTLS role unchanged) and starts its ICE checks only once it has
    answered the server's first offer."""

    def __init__(self, participant_id: str) -> None:
        super().__init__(participant_id)
        self.offered_mids: set[str] = set()
        self.answered_reoffer = asyncio.Event()
        self.rewritten = 0

    async def _to_participant(self, message: Mapping[str, Any]) -> None:
        assert self.participant is not None
        sdp_text = str(message["sdp"])
        if message["type"] == "offer":
            self.offered_mids = set(re.findall(r"^a=mid:(\S+)\r?$", sdp_text, flags=re.MULTILINE))
            self._hold_ice()
            await self.participant.handle(OfferMessage(sdp_text))
            return
        firefox_answer = self._firefox_setup(sdp_text)
        await self.participant.handle(AnswerMessage(firefox_answer))
        self.answered_reoffer.set()

    def _firefox_setup(self, sdp_text: str) -> str:
        sections = re.split(r"(?=^m=)", sdp_text, flags=re.MULTILINE)
        out = [sections[0]]
        for section in sections[1:]:
            mid = re.search(r"^a=mid:(\S+)\r?$", section, flags=re.MULTILINE)
            if mid is not None and mid.group(1) not in self.offered_mids and "a=setup:passive" in section:
                section = section.replace("a=setup:passive", "a=setup:active")
                self.rewritten += 1
            out.append(section)
        return "".join(out)

    def _hold_ice(self) -> None:
        for transceiver in self.pc.getTransceivers():
            ice = transceiver.receiver.transport.transport
            start = ice.start

            async def gated_start(parameters: Any, start: Any = start) -> None:
                await asyncio.wait_for(self.answered_reoffer.wait(), timeout=15)
                await start(parameters)

            ice.start = gated_start  # type: ignore[method-assign]


@pytest.mark.usefixtures("media_runtime")
async def test_patient_answering_like_firefox_before_ice_completes_connects_and_gets_media() -> None:
    room = new_room()
    host, patient = LocalPeer("host"), FirefoxLikePatient("patient")
    try:
        await connect_all(host, room=room)
        await patient.join(room)
        await asyncio.wait_for(patient.answered_reoffer.wait(), timeout=15)
        assert patient.rewritten == 2, "the server's re-offer adds the host's audio and video"
        assert patient.participant is not None
        server_pc = patient.participant.peer.pc
        await wait_for_condition(lambda: server_pc.connectionState == "connected", timeout_s=15,
                                 what="the server's connection to the Firefox-like patient")
        await wait_for_condition(
            lambda: patient.frames_from("host", "video") > 5 and host.frames_from("patient", "video") > 5,
            timeout_s=15, what="video both ways")
    finally:
        await close_all(room, host, patient)
