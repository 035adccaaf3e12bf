"""Figure 3: join time in headless Chromium, from opening the invite link to the first remote
frame rendered.

    python -m bench.join_time --joins 20
    python -m bench.join_time --smoke
    python -m bench.join_time --joins 20 --e2ee   # E2EE required: the link carries the secret

With `--e2ee` the consultations require end-to-end encryption: the Python host makes the link
with its link secret (docs/e2ee.md), the page verifies the host's key, exchanges media keys and
decrypts every frame in its Worker; `decoded`/`frame` then mean the first DECRYPTED frame.

Per join: a new consultation whose host is a Python client (pre-encoded 640x480 VP8 30 fps +
Opus) that admits whoever waits, programmatically; then a fresh browser context (fake camera
and microphone) opens `/join#<token>`, waits for the device check, types a name and clicks
Join (Playwright, a few ms), waits in the lobby until admitted, and enters the call.
Measured in the page, from navigation start (performance.timeOrigin):
- `frame`: the first requestVideoFrameCallback of a remote tile's <video> (frame presented);
- `decoded`: the first time getStats() shows inbound video framesDecoded > 0 (polled every
  animation frame);
- `submit`: when the Join button was clicked (what the page needed before a human could act).
"""

from __future__ import annotations

import argparse
import asyncio
import os
from typing import Any

from bench.common import REPO, Child, machine, running, table
from client.api import ApiClient
from client.media import PreparedMedia, SendLog
from client.participant import ConsultationClient
from client.peer import MediaOptions, MediaPeer
from client.provision import provision_doctor
from client.receiving import percentile
from server.sfu import aiortc_hook

CHROMIUM = os.environ.get("TELECONSULT_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
]

FIRST_FRAME_PROBE = """
window.__join = {};
(function watch() {
  document.querySelectorAll('figure.tile:not(.self) video').forEach((v) => {
    if (v.__hooked || !v.requestVideoFrameCallback) return;
    v.__hooked = true;
    v.requestVideoFrameCallback(() => { if (!window.__join.frame) window.__join.frame = performance.now(); });
  });
  const pc = window.teleconsult && window.teleconsult.pc;
  if (pc && !window.__join.decoded && !window.__join.polling) {
    window.__join.polling = true;
    pc.getStats().then((stats) => {
      stats.forEach((s) => {
        if (s.type === 'inbound-rtp' && s.kind === 'video' && s.framesDecoded > 0 && !window.__join.decoded) {
          window.__join.decoded = performance.now();
        }
      });
      window.__join.polling = false;
    });
  }
  if (!(window.__join.frame && window.__join.decoded)) requestAnimationFrame(watch);
})();
"""


async def one_join(index: int, server: Child, staff: ApiClient, browser: Any, options: MediaOptions,
                   timeout_s: float, e2ee: bool = False) -> dict[str, float]:
    cid = await staff.create_consultation(label=f"join {index}")
    link = await staff.invite(cid)
    host = ConsultationClient(staff, cid, MediaPeer(f"host{index}", options),
                              room_token=await staff.room_token(cid), auto_admit=True)
    await host.connect()
    if e2ee:
        link = host.make_patient_link(link, "required")
    context = await browser.new_context()
    try:
        page = await context.new_page()
        await page.add_init_script(FIRST_FRAME_PROBE)
        path = link.split("/join", 1)[1]
        await page.goto(f"{server.base_url}/join{path}")
        await page.wait_for_selector("#display-name", state="visible", timeout=timeout_s * 1000)
        await page.fill("#display-name", f"Patient {index}")
        submit = float(await page.evaluate("performance.now()"))
        await page.click("#join-submit")
        await page.wait_for_function("() => !!(window.__join.frame && window.__join.decoded)",
                                     timeout=timeout_s * 1000, polling="raf")
        marks: dict[str, Any] = await page.evaluate("window.__join")
        return {"submit": submit / 1000, "decoded": float(marks["decoded"]) / 1000,
                "frame": float(marks["frame"]) / 1000}
    finally:
        await context.close()
        await host.leave()
        await staff.end(cid)


async def run(args: argparse.Namespace, server: Child) -> None:
    from playwright.async_api import async_playwright

    aiortc_hook.restrict_host_addresses(["127.0.0.1"])
    options = MediaOptions(prepared=PreparedMedia.build(seconds=2.0), send_log=SendLog())
    creds = await provision_doctor(server.base_url, server.env, "join@example.test", cwd=REPO)
    staff = await ApiClient.open(server.base_url)
    rows: list[list[object]] = []
    results: list[dict[str, float]] = []
    try:
        await staff.login_staff(creds.email, creds.password, creds.totp_secret)
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                await one_join(0, server, staff, browser, options, args.timeout, args.e2ee)  # warm-up
                for i in range(1, args.joins + 1):
                    r = await one_join(i, server, staff, browser, options, args.timeout, args.e2ee)
                    results.append(r)
                    rows.append([i, r["submit"], r["decoded"], r["frame"], r["frame"] - r["submit"]])
                    print(table(["join", "submit s", "decoded s", "frame s", "frame-submit s"], rows[-1:]),
                          flush=True)
            finally:
                await browser.close()
    finally:
        await staff.close()
    print("\n" + table(["join", "submit s", "decoded s", "frame s", "frame-submit s"], rows))
    frames = [r["frame"] for r in results]
    after_submit = [r["frame"] - r["submit"] for r in results]
    print(f"SUMMARY join_time e2ee={args.e2ee} joins={len(results)} p50_s={percentile(frames, 50):.3f} "
          f"p95_s={percentile(frames, 95):.3f} after_click_p50_s={percentile(after_submit, 50):.3f} "
          f"after_click_p95_s={percentile(after_submit, 95):.3f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description="join time in headless Chromium")
    parser.add_argument("--joins", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--e2ee", action="store_true", help="consultations require end-to-end encryption")
    args = parser.parse_args()
    if args.smoke:
        args.joins = 2
    print(f"# machine: {machine()}", flush=True)
    with running("server", {"TELECONSULT_E2EE_POLICY": "required" if args.e2ee else "off"}) as server:
        asyncio.run(run(args, server))


if __name__ == "__main__":
    main()
