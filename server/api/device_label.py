"""A short, coarse label for the browser behind a session ("Firefox on Linux"), from its
User-Agent, for the person's own sessions list. Only the label is kept, never the header."""

from __future__ import annotations

_BROWSERS = (("Edg/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"), ("Chrome/", "Chrome"),
             ("Chromium/", "Chromium"), ("Safari/", "Safari"))
_SYSTEMS = (("iPhone", "iPhone"), ("iPad", "iPad"), ("Android", "Android"), ("Windows", "Windows"),
            ("Mac OS X", "macOS"), ("CrOS", "ChromeOS"), ("Linux", "Linux"))


def device_label(user_agent: str | None) -> str:
    ua = user_agent or ""
    browser = next((name for needle, name in _BROWSERS if needle in ua), "")
    if "HeadlessChrome/" in ua:
        browser = "Chrome"
    system = next((name for needle, name in _SYSTEMS if needle in ua), "")
    if browser and system:
        return f"{browser} on {system}"
    return browser or system or "Browser"
