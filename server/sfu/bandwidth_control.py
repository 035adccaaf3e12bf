"""Bandwidth in a room (issue #15, docs/sfu.md "Bandwidth"): bandwidth.py's decisions applied
every TICK_S on the packet path.

Per subscriber (its `MediaPeer.downlink`, fed by aiortc_feedback.watch_subscriber_feedback):
audio only on or off pauses or resumes every video it receives (resumed at a keyframe: a PLI
to the publisher) and tells it and the others (`AudioOnly`); while automatically audio only,
a probe of RTP padding on one of its video streams. Per published video: its
`subscriber_cap` (read by the REMB the server sends its publisher, aiortc_feedback.
cap_receiver_estimate), and for the camera an `EncodingAdvice` to the publisher when the cap
changes level (bandwidth.EncodingAdvisor). Audio is never paused.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from server.clock import Clock

from .bandwidth import BandwidthPolicy, Downlink, EncodingAdvisor, publisher_cap
from .forwarder import PublishedTrack, SubscriberTrack
from .messages import AudioOnly, EncodingAdvice

if TYPE_CHECKING:
    from .room import CallParticipant, SfuRoom

log = logging.getLogger(__name__)

TICK_S = 0.25
PROBE_CHUNK_S = 0.02
PADDING_BYTES = 255  # the most one padding-only packet carries


class BandwidthControl:
    def __init__(self, room: SfuRoom, clock: Clock, policy: BandwidthPolicy | None = None) -> None:
        self._room = room
        self._clock = clock
        self.policy = policy or BandwidthPolicy()
        self._advisors: dict[str, EncodingAdvisor] = {}
        self._task: asyncio.Task[None] | None = None
        self._probes: set[asyncio.Task[None]] = set()
        self._closed = False

    def new_downlink(self) -> Downlink:
        return Downlink(self._clock, self.policy)

    def start(self) -> None:
        if self._task is None and not self._closed:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"sfu-bandwidth-{self._room.room_id}")

    async def _run(self) -> None:
        while True:
            try:
                self.tick()
            except Exception:
                log.exception("sfu bandwidth tick failed in room %s", self._room.room_id)
            await asyncio.sleep(TICK_S)  # a control loop's period, not a synchronisation

    def tick(self) -> None:
        now = self._clock.monotonic()
        shares: dict[int, list[int | None]] = {}
        audio_only: dict[int, int] = {}
        congested: set[int] = set()
        for participant in self._room.participants():
            downlink = participant.peer.downlink
            videos = [t for t in participant.peer.outgoing_tracks()
                      if t.kind == "video" and t.source is not None]
            downlink.note_sent(sum(t.output.octets_sent for t in participant.peer.outgoing_tracks()
                                   if t.kind == "video" and t.output is not None), now)
            if downlink.update(now) and not downlink.manual:
                loss = downlink.loss(now)
                log.info("sfu participant %s: estimate %s bps, sent %s bps, loss %s, probes %d",
                         participant.participant_id, downlink.estimate(now),
                         None if (sent := downlink.sent_bps()) is None else round(sent),
                         None if loss is None else round(loss, 3), downlink.probes)
                self._tell(participant, downlink.audio_only, downlink.last_auto_reason)
            for track in videos:
                self._pause(track, downlink.audio_only)
            if downlink.probe_due(now):
                self._start_probe(downlink, videos)
            estimate = downlink.estimate(now)
            full = downlink.congested(now)
            for track in videos:
                key = id(track.source)
                if full and not downlink.audio_only:
                    congested.add(key)
                if downlink.audio_only:
                    audio_only[key] = audio_only.get(key, 0) + 1
                else:
                    shares.setdefault(key, []).append(
                        None if estimate is None else estimate // len(videos))
        live: set[str] = set()
        for participant in self._room.participants():
            for label, published in participant.published.items():
                live.add(published.track_id)
                if published.kind != "video":
                    continue
                key = id(published)
                published.subscriber_cap = publisher_cap(shares.get(key, []), audio_only.get(key, 0),
                                                          self.policy)
                if label == "video":
                    self._advise(participant, published, key in congested, now)
        for gone in set(self._advisors) - live:
            del self._advisors[gone]

    def _tell(self, participant: CallParticipant, active: bool, reason: str) -> None:
        event = AudioOnly(participant.participant_id, active, reason)
        log.info("sfu participant %s: audio only %s (%s)", participant.participant_id,
                 "on" if event.active else "off", event.reason)
        participant.spawn_notify(event)
        self._room.broadcast(participant, event)

    def manual_changed(self, participant: CallParticipant) -> None:
        """The participant's own audio-only choice: applied and told at once."""
        downlink = participant.peer.downlink
        for track in participant.peer.outgoing_tracks():
            if track.kind == "video" and track.source is not None:
                self._pause(track, downlink.audio_only)
        reason = downlink.auto_reason if downlink.audio_only and not downlink.manual else "manual"
        self._tell(participant, downlink.audio_only, reason or "manual")

    @staticmethod
    def _pause(track: SubscriberTrack, paused: bool) -> None:
        if track.paused == paused:
            return
        track.paused = paused
        if not paused:
            track.resync()  # from the next keyframe, asked for now
            track.request_keyframe()

    def _advise(self, participant: CallParticipant, published: PublishedTrack, congested: bool,
                now: float) -> None:
        advisor = self._advisors.get(published.track_id)
        if advisor is None:
            advisor = self._advisors[published.track_id] = EncodingAdvisor(self.policy, now=now)
        request = advisor.update(published.subscriber_cap, congested, now)
        if request is not None:
            log.info("sfu participant %s: encoding advice %s", participant.participant_id, request)
            participant.spawn_notify(EncodingAdvice(published.label, request.max_bitrate_bps,
                                                    request.scale_resolution_down_by, request.max_framerate))

    # -- probing a paused downlink ------------------------------------------------------------

    def _start_probe(self, downlink: Downlink, videos: list[SubscriberTrack]) -> None:
        track = next((t for t in videos if t.output is not None and t.output.ready
                      and t.stream is not None), None)
        if track is None or track.output is None:
            return
        downlink.probe_started(track.output.ssrc)
        task = asyncio.get_running_loop().create_task(self._probe(downlink, track),
                                                      name=f"sfu-probe-{self._room.room_id}")
        self._probes.add(task)
        task.add_done_callback(self._probes.discard)

    async def _probe(self, downlink: Downlink, track: SubscriberTrack) -> None:
        policy = self.policy
        chunks = max(1, round(policy.probe_s / PROBE_CHUNK_S))
        per_chunk = max(1, round(policy.probe_bps * policy.probe_s / 8 / PADDING_BYTES / chunks))
        sent = 0
        try:
            for _ in range(chunks):
                output, stream = track.output, track.stream
                if output is None or stream is None or output.payload_type is None or not track.paused:
                    break
                for _ in range(per_chunk):
                    data = stream.padding(output.payload_type, PADDING_BYTES, output.header_extension())
                    if output.send(data, 0, 0, count=False):
                        sent += 1
                await asyncio.sleep(PROBE_CHUNK_S)  # pacing the probe, not a synchronisation
        finally:
            downlink.probe_ended(sent)

    async def close(self) -> None:
        self._closed = True
        tasks = [t for t in (self._task, *self._probes) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
