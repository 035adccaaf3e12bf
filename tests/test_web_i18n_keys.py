"""Every string key the pages use exists in both dictionaries (EN and FR), and the two
dictionaries have the same keys: nothing new ships in one language only."""

from __future__ import annotations

import json
import re
from pathlib import Path

from server.integrations.events import EventType
from server.integrations.models import KeyStatus, Scope

WEB = Path(__file__).resolve().parent.parent / "web"
MARKUP_KEY = re.compile(r'data-i18n(?:-[a-z-]+)?="([a-zA-Z0-9_.]+)"')
JS_KEY = re.compile(r"""(?:\bt\(|say\(|button\(|showError\([^,]+,\s*)'([a-z][a-zA-Z0-9]*\.[a-zA-Z0-9_.]+)'""")
LITERAL_KEY = re.compile(r"""'((?:auth|common|dash|join|call|rec|recordings|lang|app)\.[a-zA-Z0-9_.]+)'""")


def _dict(lang: str) -> dict[str, str]:
    return dict(json.loads((WEB / "i18n" / f"{lang}.json").read_text()))


def test_both_languages_have_the_same_keys() -> None:
    en, fr = _dict("en"), _dict("fr")
    assert set(en) - set(fr) == set()
    assert set(fr) - set(en) == set()
    assert all(fr[k].strip() for k in fr), "an empty French string"


def test_every_key_the_auth_pages_use_exists() -> None:
    en = _dict("en")
    used: set[str] = set()
    for html in ("login.html", "account.html", "enrol.html"):
        used |= set(MARKUP_KEY.findall((WEB / html).read_text()))
    for js in (WEB / "js" / "auth").glob("*.js"):
        text = js.read_text()
        used |= set(JS_KEY.findall(text)) | set(LITERAL_KEY.findall(text))
    used = {k for k in used if not k.endswith(".")}
    missing = sorted(k for k in used if k not in en)
    assert missing == []
    # the notice and strength keys built at run time
    assert {"auth.notice.mfa_reset", *(f"auth.strength.{i}" for i in range(5))} <= set(en)


def test_every_key_the_admin_page_uses_exists() -> None:
    en = _dict("en")
    used = set(MARKUP_KEY.findall((WEB / "admin.html").read_text()))
    text = "\n".join((WEB / "js" / "admin" / name).read_text() for name in ("admin-page.js", "integrations.js"))
    used |= set(JS_KEY.findall(text)) | set(re.findall(r"""'((?:admin|recordings|common|dash)\.[a-zA-Z0-9_.-]+)'""", text))
    used = {k for k in used if not k.endswith(".")}
    assert sorted(k for k in used if k not in en) == []
    # built at run time: roles, states, the done messages
    assert {f"admin.role.{r}" for r in ("admin", "doctor")} <= set(en)
    assert {f"admin.state.{s}" for s in ("active", "pending", "disabled", "locked")} <= set(en)
    assert {f"admin.done.{a}" for a in ("enable", "disable", "reset-mfa", "role")} <= set(en)
    # the integrations panel's scopes, events and key states, built from the server's names
    scopes = [s.value for s in Scope]
    events = [e.value for e in EventType]
    assert re.findall(r"'([a-z]+:[a-z]+)'", text) == scopes  # the panel offers every scope, once
    assert {f"admin.int.scope.{s}" for s in scopes} <= set(en)
    assert {f"admin.int.event.{e}" for e in events} <= set(en)
    assert {f"admin.int.status.{k.value}" for k in KeyStatus} <= set(en)
