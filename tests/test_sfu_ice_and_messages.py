"""ICE configuration (TURN REST credentials, announce address) and the media message schema."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from server.config import Secret, Settings
from server.errors import ConfigError, InvalidInput
from server.sfu.ice import (
    IceSettings,
    announce_host_candidates,
    browser_ice_servers,
    server_configuration,
    turn_rest_credentials,
)
from server.sfu.messages import (
    AnswerMessage,
    LeaveMessage,
    MuteMessage,
    MuteState,
    OfferMessage,
    OutgoingTrackInfo,
    ParticipantJoined,
    ParticipantLeft,
    RenegotiateMessage,
    ServerAnswer,
    ServerOffer,
    TrackInfo,
    TrackPublished,
    TrackUnpublished,
)
from server.signalling.media import (
    MAX_SDP_BYTES,
    MEDIA_MESSAGE_TYPES,
    media_event_message,
    parse_media_message,
)

SDP = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"


def test_server_configuration_never_uses_aiortc_default_stun() -> None:
    assert server_configuration(IceSettings()).iceServers == []
    config = server_configuration(IceSettings(stun_urls=("stun:stun.example.org:3478",)))
    assert config.iceServers is not None and config.iceServers[0].urls == ["stun:stun.example.org:3478"]


def test_turn_rest_credentials_match_coturn_use_auth_secret() -> None:
    creds = turn_rest_credentials(Secret("s3cret"), user_id="p1", now=1_800_000_000.5, ttl_s=3600)
    assert creds.username == "1800003600:p1"
    expected = base64.b64encode(hmac.new(b"s3cret", b"1800003600:p1", hashlib.sha1).digest()).decode()
    assert creds.credential == expected
    with pytest.raises(ConfigError):
        turn_rest_credentials(Secret(""), user_id="p1", now=0, ttl_s=10)


def test_browser_ice_servers_from_settings() -> None:
    settings = Settings(stun_urls=("stun:a:3478",), turn_urls=("turn:t:3478?transport=udp",),
                        turn_secret=Secret("k"), turn_ttl_s=600)
    servers = browser_ice_servers(IceSettings.from_settings(settings), user_id="p9", now=1000)
    assert servers[0] == {"urls": ["stun:a:3478"]}
    assert servers[1]["username"] == "1600:p9" and servers[1]["urls"] == ["turn:t:3478?transport=udp"]


def test_ice_transport_policy_setting_reaches_the_welcome() -> None:
    from server.config import load_settings
    from server.signalling.envelope import welcome_message

    assert IceSettings.from_settings(Settings()).transport_policy == "all"
    relay = load_settings(environ={"TELECONSULT_ICE_TRANSPORT_POLICY": "relay"})
    assert IceSettings.from_settings(relay).transport_policy == "relay"
    with pytest.raises(ConfigError, match="ICE_TRANSPORT_POLICY"):
        load_settings(environ={"TELECONSULT_ICE_TRANSPORT_POLICY": "tcp"})
    assert welcome_message("p1", "patient", "admitted", [], [], ice_transport_policy="relay")["ice_transport_policy"] == "relay"
    assert welcome_message("p1", "patient", "admitted", [], [])["ice_transport_policy"] == "all"


def test_announce_address_rewrites_host_candidates_only() -> None:
    sdp = ("m=audio 5000 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 10.0.0.5\r\n"
           "a=candidate:1 1 udp 2130706431 10.0.0.5 5000 typ host\r\n"
           "a=candidate:2 1 udp 1694498815 198.51.100.1 6000 typ srflx raddr 10.0.0.5 rport 5000\r\n")
    out = announce_host_candidates(sdp, "203.0.113.7")
    assert "a=candidate:1 1 udp 2130706431 203.0.113.7 5000 typ host\r\n" in out
    assert "c=IN IP4 203.0.113.7\r\n" in out
    assert "198.51.100.1 6000 typ srflx" in out
    assert announce_host_candidates(sdp, "") == sdp
    with pytest.raises(ConfigError):
        IceSettings(announce_address="not-an-ip")


def test_parse_valid_media_messages() -> None:
    assert parse_media_message({"v": 1, "type": "offer", "sdp": SDP}) == OfferMessage(SDP)
    assert parse_media_message({"v": 1, "type": "answer", "sdp": SDP}) == AnswerMessage(SDP)
    assert parse_media_message({"v": 1, "type": "renegotiate", "publish": ["audio", "screen"]}) == \
        RenegotiateMessage(frozenset({"audio", "screen"}))
    assert parse_media_message({"v": 1, "type": "mute", "kind": "video", "muted": True}) == \
        MuteMessage("video", True)
    assert parse_media_message({"v": 1, "type": "leave"}) == LeaveMessage()
    assert frozenset({"offer", "answer", "renegotiate", "mute", "leave", "receive-video",
                      "network-quality"}) == MEDIA_MESSAGE_TYPES


@pytest.mark.parametrize(("obj", "code"), [
    ({"type": "offer", "sdp": SDP}, "unsupported_version"),
    ({"v": 2, "type": "offer", "sdp": SDP}, "unsupported_version"),
    ({"v": 1, "type": "hello"}, "unknown_type"),
    ({"v": 1}, "unknown_type"),
    ({"v": 1, "type": "offer"}, "missing_field"),
    ({"v": 1, "type": "offer", "sdp": 42}, "invalid_sdp"),
    ({"v": 1, "type": "offer", "sdp": "garbage"}, "invalid_sdp"),
    ({"v": 1, "type": "answer", "sdp": SDP + "a=x\r\n" * (MAX_SDP_BYTES // 5)}, "sdp_too_large"),
    ({"v": 1, "type": "mute", "kind": "camera", "muted": True}, "invalid_field"),
    ({"v": 1, "type": "mute", "kind": "audio", "muted": "yes"}, "invalid_field"),
    ({"v": 1, "type": "mute", "kind": "audio"}, "missing_field"),
    ({"v": 1, "type": "renegotiate", "publish": "screen"}, "invalid_field"),
    ({"v": 1, "type": "renegotiate", "publish": ["webcam"]}, "invalid_field"),
])
def test_bad_media_messages_get_clear_codes(obj: dict[str, object], code: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        parse_media_message(obj)
    assert exc.value.code == code


def test_sfu_events_become_the_documented_server_messages() -> None:
    """The SFU gives typed events; their JSON (docs/sfu.md, web/) is built in one place."""
    track = TrackInfo("a", "a-video-1", "video", False)
    outgoing = OutgoingTrackInfo("1", "a", "a-video-1", "video")
    assert media_event_message(ServerAnswer(SDP)) == {"v": 1, "type": "answer", "sdp": SDP}
    assert media_event_message(ServerOffer(SDP, (outgoing,), {"2": "screen"})) == {
        "v": 1, "type": "offer", "sdp": SDP, "receive": {"2": "screen"},
        "tracks": [{"mid": "1", "participant_id": "a", "track_id": "a-video-1", "kind": "video"}]}
    track_json = {"participant_id": "a", "track_id": "a-video-1", "kind": "video", "muted": False}
    assert media_event_message(ParticipantJoined("a", (track,))) == {
        "v": 1, "type": "participant-joined", "participant_id": "a", "tracks": [track_json]}
    assert media_event_message(ParticipantLeft("a", ("a-video-1",))) == {
        "v": 1, "type": "participant-left", "participant_id": "a", "tracks": ["a-video-1"]}
    assert media_event_message(TrackPublished(track)) == {
        "v": 1, "type": "track-published", "participant_id": "a", "track": track_json}
    assert media_event_message(TrackUnpublished("a", "a-video-1", "video")) == {
        "v": 1, "type": "track-unpublished", "participant_id": "a", "track_id": "a-video-1",
        "kind": "video"}
    assert media_event_message(MuteState("a", "audio", True)) == {
        "v": 1, "type": "mute-state", "participant_id": "a", "kind": "audio", "muted": True}
