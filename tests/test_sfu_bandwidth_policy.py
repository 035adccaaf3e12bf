"""bandwidth.py's decisions on a manual clock: when a subscriber goes audio only and comes back
(probes), what a publisher may send, and the encoding advice with its hysteresis."""

from __future__ import annotations

from server.clock import ManualClock
from server.sfu.aiortc_feedback import ReceiverReport
from server.sfu.bandwidth import (
    FULL_ENCODING,
    BandwidthPolicy,
    Downlink,
    EncodingAdvisor,
    EncodingRequest,
    publisher_cap,
)

SSRC = 1234


def _past_grace(clock: ManualClock) -> Downlink:
    downlink = Downlink(clock)
    clock.advance(downlink.policy.start_grace_s)
    return downlink


def _step(clock: ManualClock, downlink: Downlink, seconds: float, *, remb: int | None = None,
          sent_bps: int = 400_000) -> list[bool]:
    """Advance in 0.25 s ticks, feeding a REMB and what the server sent so far (`sent_bps`
    since the clock's start) each tick."""
    changes = []
    for _ in range(round(seconds / 0.25)):
        clock.advance(0.25)
        downlink.note_sent(int(clock.monotonic() * sent_bps / 8))
        if remb is not None:
            downlink.on_remb(remb)
        changes.append(downlink.update())
    return changes


def _lossy(clock: ManualClock, downlink: Downlink, ticks: int, lost_per_40: int, *, upstream: bool = False,
           sent_bps: int | None = None, remb: int | None = None) -> None:
    """`ticks` receiver reports 0.25 s apart, 40 packets each, `lost_per_40` of them lost (all
    before the server when `upstream`), with what the server sent and a REMB when given."""
    lost = before_server = 0
    highest = 1000
    for _ in range(ticks):
        clock.advance(0.25)
        if sent_bps is not None:
            downlink.note_sent(int(clock.monotonic() * sent_bps / 8))
        if remb is not None:
            downlink.on_remb(remb)
        highest += 40
        lost += lost_per_40
        before_server += lost_per_40 if upstream else 0
        downlink.on_report(ReceiverReport(SSRC, lost, highest, lost_per_40 / 40, None), before_server)
        downlink.update()


def test_a_low_estimate_held_for_five_seconds_means_audio_only() -> None:
    clock = ManualClock()
    downlink = _past_grace(clock)
    hold = downlink.policy.audio_only_after_s
    assert _step(clock, downlink, hold - 0.5, remb=60_000) == [False] * round((hold - 0.5) / 0.25)
    assert not downlink.audio_only
    assert True in _step(clock, downlink, 1.0, remb=60_000)
    assert downlink.audio_only and downlink.reason == "bandwidth"


def test_a_low_estimate_that_matches_what_is_sent_is_no_congestion() -> None:
    clock = ManualClock()
    downlink = _past_grace(clock)
    # the publisher sends 100 kbit/s (a still picture) and the subscriber takes all of it
    assert not any(_step(clock, downlink, 10, remb=110_000, sent_bps=100_000))
    assert not downlink.audio_only


def test_no_audio_only_during_the_start_grace_nor_on_a_short_dip() -> None:
    clock = ManualClock()
    downlink = Downlink(clock)
    assert not any(_step(clock, downlink, downlink.policy.start_grace_s - 0.5, remb=50_000))
    downlink = _past_grace(clock)
    for _ in range(5):
        _step(clock, downlink, 4.0, remb=50_000)
        _step(clock, downlink, 0.5, remb=900_000)
    assert not downlink.audio_only


def test_loss_over_ten_percent_for_five_seconds_means_audio_only() -> None:
    clock = ManualClock()
    downlink = _past_grace(clock)
    downlink.on_report(ReceiverReport(SSRC + 1, 0, 0, 0.0, 0.05))  # aiortc's RTT, kept
    _lossy(clock, downlink, 24, 8)  # a report every 0.25 s: 40 packets expected, 8 lost (20 %)
    assert downlink.audio_only and downlink.reason == "loss"
    assert downlink.loss() is not None and 0.15 < (downlink.loss() or 0) < 0.25
    assert downlink.rtt_s == 0.05


def test_five_percent_loss_is_not_enough() -> None:
    clock = ManualClock()
    downlink = _past_grace(clock)
    _lossy(clock, downlink, 40, 2)
    assert not downlink.audio_only


def _probe(clock: ManualClock, downlink: Downlink, state: dict[str, int], *, lost_share: float) -> None:
    """Run one probe of 40 packets, the subscriber reporting `lost_share` of them lost."""
    while not downlink.probe_due():
        clock.advance(0.25)
        downlink.update()
    downlink.probe_started(SSRC)
    clock.advance(0.3)
    downlink.probe_ended(40)
    clock.advance(downlink.policy.probe_settle_s + 0.1)
    lost = round(40 * lost_share)
    state["highest"] += 40
    state["lost"] += lost
    downlink.on_report(ReceiverReport(SSRC, state["lost"], state["highest"], lost / 40, None))
    downlink.update()


def test_probes_bring_the_video_back_two_good_ones_in_a_row() -> None:
    clock = ManualClock()
    downlink = _past_grace(clock)
    state = {"lost": 10, "highest": 500}
    downlink.on_report(ReceiverReport(SSRC, state["lost"], state["highest"], 0.0, None))
    _step(clock, downlink, downlink.policy.audio_only_after_s + 1, remb=50_000)
    assert downlink.audio_only
    assert not downlink.probe_due()  # the first probe waits probe_every_s
    _probe(clock, downlink, state, lost_share=0.4)
    assert downlink.audio_only and downlink.good_probes == 0
    _probe(clock, downlink, state, lost_share=0.0)
    assert downlink.audio_only and downlink.good_probes == 1
    _probe(clock, downlink, state, lost_share=0.3)  # a bad one starts the count again
    assert downlink.good_probes == 0
    _probe(clock, downlink, state, lost_share=0.0)
    _probe(clock, downlink, state, lost_share=0.025)
    assert not downlink.audio_only and downlink.probes == 5
    # the stale low REMB from before does not send it straight back
    assert downlink.estimate() is None
    assert not any(_step(clock, downlink, downlink.policy.resume_grace_s - 0.25))


def test_a_probe_nobody_reports_on_counts_as_lost() -> None:
    clock = ManualClock()
    downlink = _past_grace(clock)
    downlink.on_report(ReceiverReport(SSRC, 0, 100, 0.0, None))
    _step(clock, downlink, downlink.policy.audio_only_after_s + 1, remb=50_000)
    while not downlink.probe_due():
        clock.advance(0.25)
    downlink.probe_started(SSRC)
    downlink.probe_ended(40)
    clock.advance(downlink.policy.probe_timeout_s + 0.5)
    downlink.update()
    assert downlink.probes == 1 and downlink.good_probes == 0 and downlink.audio_only


def test_manual_audio_only_is_the_participants_and_is_not_probed() -> None:
    clock = ManualClock()
    downlink = _past_grace(clock)
    downlink.set_manual(True)
    assert downlink.audio_only and downlink.reason == "manual"
    clock.advance(30)
    assert not downlink.probe_due()
    downlink.set_manual(False)
    assert not downlink.audio_only


def test_publisher_cap_is_the_smallest_share() -> None:
    policy = BandwidthPolicy()
    assert publisher_cap([400_000, 250_000, None], 0, policy) == 250_000
    assert publisher_cap([None], 1, policy) is None
    assert publisher_cap([], 2, policy) == policy.idle_cap_bps  # only audio-only subscribers
    assert publisher_cap([], 0, policy) is None


def test_encoding_advice_needs_congestion_to_go_down_and_a_clean_wait_to_go_up() -> None:
    advisor = EncodingAdvisor(now=0.0)
    grace = advisor.policy.advice_grace_s
    # the call's first seconds: a low cap is the encoder's ramp, not advice
    assert advisor.update(100_000, True, 1.0) is None
    assert advisor.update(100_000, True, grace - 0.1) is None
    # a low cap with no congestion: the publisher only sends little
    now = grace
    for step in range(20):
        assert advisor.update(250_000, False, now + step * 0.25) is None
    assert advisor.update(700_000, False, now + 5) is None  # back over the level
    now += 6
    assert advisor.update(250_000, True, now) is None
    assert advisor.update(250_000, False, now + 1.0) is None
    low = advisor.update(250_000, False, now + 2.0)  # under the level 2 s, congested meanwhile
    assert low == EncodingRequest(300_000, 2.0, 15.0)  # the level's ceiling, not the cap
    assert advisor.update(120_000, True, now + 3) is None  # within the level: the REMB's job
    # up one level after restore_after_s clean with a cap over the level's ceiling, then another
    clean = now + 3.25
    wait = advisor.policy.restore_after_s
    assert advisor.update(250_000, False, clean) is None
    assert advisor.update(250_000, False, clean + wait - 0.1) is None
    assert advisor.update(250_000, False, clean + wait) is None  # clean, but the cap says not yet
    assert advisor.update(400_000, False, clean + wait + 0.25) == EncodingRequest(600_000, 1.5, None)
    clean += 0.25
    upgraded = clean + wait
    # undone at once: back down, and the next try waits twice as long
    assert advisor.update(250_000, True, upgraded + 1) is None
    assert advisor.update(250_000, True, upgraded + 3) == EncodingRequest(300_000, 2.0, 15.0)
    assert advisor.wait_s == 2 * wait
    back = upgraded + 3.25
    assert advisor.update(900_000, False, back) is None
    assert advisor.update(900_000, False, back + wait) is None
    assert advisor.update(900_000, False, back + 2 * wait) == EncodingRequest(600_000, 1.5, None)
    assert advisor.update(900_000, False, back + 4 * wait) == FULL_ENCODING
    assert advisor.update(None, False, back + 10 * wait) is None


def test_a_cap_that_keeps_falling_after_the_first_step_takes_the_next_one() -> None:
    """A 300 kbit/s link: the congestion brings the first step (600 kbit/s, scale 1.5), then the
    relayed REMB holds the publisher under the cap and no new congestion shows while the cap
    goes on down: the recent congestion still counts for the next step; an older one does not."""
    advisor = EncodingAdvisor(now=0.0)
    policy = advisor.policy
    now = policy.advice_grace_s + 1
    assert advisor.update(450_000, True, now) is None
    assert advisor.update(450_000, False, now + policy.reduce_after_s) == EncodingRequest(600_000, 1.5, None)
    fell = now + policy.reduce_after_s + 1  # the cap under the next level, no congestion since
    assert advisor.update(200_000, False, fell) is None
    assert advisor.update(200_000, False, fell + policy.reduce_after_s) == EncodingRequest(300_000, 2.0, 15.0)

    later = EncodingAdvisor(now=0.0)
    now = policy.advice_grace_s + 1
    later.update(450_000, True, now)
    assert later.update(450_000, False, now + policy.reduce_after_s) == EncodingRequest(600_000, 1.5, None)
    old = now + policy.congestion_memory_s + 1  # the congestion is older than the memory now
    assert later.update(200_000, False, old) is None
    assert later.update(200_000, False, old + policy.reduce_after_s) is None
    assert policy.congestion_memory_s < policy.restore_after_s


def test_loss_before_the_server_is_not_the_subscribers() -> None:
    """The publisher's uplink loses 20 %: the subscriber reports those as lost, but the server
    never had them; its own downlink is clean."""
    clock = ManualClock()
    downlink = _past_grace(clock)
    _lossy(clock, downlink, 40, 8, upstream=True)
    assert downlink.loss() == 0.0 and not downlink.congested() and not downlink.audio_only


def test_loss_while_the_publisher_still_adapts_to_the_remb_is_not_audio_only() -> None:
    """The first seconds of a cap: the server still sends 500 kbit/s, the subscriber says it
    takes 200 and loses a third; the REMB will bring the publisher down, video stays."""
    clock = ManualClock()
    downlink = _past_grace(clock)
    _lossy(clock, downlink, 32, 13, sent_bps=500_000, remb=200_000)
    assert not downlink.audio_only
