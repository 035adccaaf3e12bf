"""Text in the consultation (issue #18 item 4), in real Chromium against a real server whose
consultations require E2EE: chat crosses both ways, end-to-end encrypted (no WebSocket frame,
either way, on either page carries the text), and the text is in no server log and no file of
the server's data directory (the store); the doctor's note reaches the waiting room, and a
patient arriving later; EN and FR strings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import sync_playwright

from tests.helpers.browser_helpers import chromium, dictionary, screenshot, wait_js, watched
from tests.helpers.e2ee_browser_helpers import E2EE_REQUIRED_ENV
from tests.helpers.journey_steps import admit, doctor_in_call, media_flowing, patient_link, patient_waiting
from tests.helpers.server_process import running_server

pytestmark = pytest.mark.browser

TO_PATIENT = "Amoxicillin 500 mg — A-M-O-X-I-C-I-L-L-I-N, three times a day"
TO_DOCTOR = "Merci docteur, c’est noté : trois fois par jour"
NOTE = "Running 10 minutes late, sorry"
E2EE_ACTIVE = "!!window.teleconsult.e2ee && window.teleconsult.e2ee.active"


def tap(page: Any) -> list[str]:
    """Every WebSocket frame the page sends or receives, as text."""
    frames: list[str] = []

    def on_socket(ws: Any) -> None:
        for event in ("framesent", "framereceived"):
            ws.on(event, lambda payload: frames.append(payload if isinstance(payload, str) else payload.decode("latin-1")))

    page.on("websocket", on_socket)
    return frames


def chat_bodies(frames: list[str]) -> list[dict[str, Any]]:
    out = []
    for f in frames:
        try:
            msg = json.loads(f)
        except ValueError:
            continue
        if isinstance(msg, dict) and msg.get("type") == "chat":
            out.append(msg["body"])
    return out


def send(page: Any, text: str) -> None:
    if page.is_hidden("#chat-panel"):
        page.click("#btn-chat")
    page.fill("#chat-input", text)
    page.click("#chat-send")
    wait_js(page, "(t) => [...document.querySelectorAll('#chat-log li.mine .chat-text')].some((e) => e.textContent === t)",
            "the sent message in the sender's log", arg=text)


def received(page: Any, text: str, who: str) -> None:
    wait_js(page, "([t, w]) => [...document.querySelectorAll('#chat-log li.theirs')].some((li) =>"
            " li.querySelector('.chat-text').textContent === t && li.querySelector('.chat-who').textContent === w)",
            f"{who}'s message received", arg=[text, who])


def files_containing(root: Path, needles: list[bytes]) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            hits += [f"{path.name}: {n!r}" for n in needles if n in data]
    return hits


def test_chat_end_to_end_encrypted_both_ways_kept_nowhere_and_the_waiting_room_note(tmp_path: Path) -> None:
    en, fr = dictionary("en"), dictionary("fr")
    with running_server(tmp_path, E2EE_REQUIRED_ENV) as server, sync_playwright() as pw:
        browser = chromium(pw)
        with watched(browser) as watches:
            doctor, dwatch = doctor_in_call(browser, server, tmp_path, email="dr.chat@example.test",
                                            name="Dr Chat", label="Chat check")
            watches.append(dwatch)
            doctor_frames = tap(doctor)  # the call socket below is opened after this (a reload)
            doctor.reload()
            wait_js(doctor, "window.teleconsult.state === 'in-call'", "doctor back in the call")
            link = patient_link(doctor)

            # The note first: a patient already waiting sees it, and so does one arriving later.
            early, ewatch = patient_waiting(browser, link, "Paul Patient", locale="fr-FR")
            watches.append(ewatch)
            doctor.fill("#lobby-note", NOTE)
            doctor.click("#lobby-note-send")
            wait_js(doctor, "!document.getElementById('lobby-note-sent').hidden", "note sent")
            wait_js(early, "(t) => !document.getElementById('waiting-note').hidden"
                    " && document.getElementById('waiting-note').textContent === t", "the note in the waiting room", arg=NOTE)
            screenshot(early, "visit-waiting-note-390x844-fr")
            late, lwatch = patient_waiting(browser, patient_link(doctor), "Lena Late")
            watches.append(lwatch)
            wait_js(late, "(t) => document.getElementById('waiting-note').textContent === t", "the note for a later arrival", arg=NOTE)

            admit(doctor, "Paul Patient", early)
            media_flowing(doctor, early)
            for page, who in ((doctor, "doctor"), (early, "patient")):
                wait_js(page, E2EE_ACTIVE, f"{who}: the call end-to-end encrypted", timeout_s=30)
            assert early.inner_text("#btn-chat .control-label") == fr["call.chatShort"]

            send(doctor, TO_PATIENT)
            wait_js(early, "document.querySelector('#btn-chat .chat-unread').textContent === '1'", "unread badge")
            early.click("#btn-chat")
            received(early, TO_PATIENT, "Dr Chat")
            assert early.inner_text("#chat-protection") == fr["chat.e2ee"]
            send(early, TO_DOCTOR)
            received(doctor, TO_DOCTOR, "Paul Patient")
            assert doctor.inner_text("#chat-protection") == en["chat.e2ee"]
            screenshot(early, "visit-chat-390x844-fr")
            screenshot(doctor, "visit-chat-1280x800-en")

            # On the wire (the doctor's socket carries both directions): chat bodies are
            # ciphertexts; the text is in no frame.
            bodies = chat_bodies(doctor_frames)
            assert len(bodies) >= 2, bodies
            assert all(b.get("kind") == "e2ee" and set(b) == {"kind", "key_id", "iv", "ct"} for b in bodies), bodies
            needles = [TO_PATIENT, TO_DOCTOR, "AMOX", "A-M-O-X", "noté"]
            assert not [f for f in doctor_frames if any(n in f for n in needles)]
            # Nowhere on the server: no log line, no file of its data directory (the store).
            log = server.log_text()
            assert not [n for n in needles if n in log]
            assert not files_containing(tmp_path, [n.encode() for n in needles])
            # The note is not kept in the store either (memory only).
            assert not files_containing(tmp_path / "data", [NOTE.encode()])

