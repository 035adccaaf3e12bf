"""The DTLS role of a bundled answer: the answerer-tagged m-section's `a=setup` holds for all.

Under BUNDLE every m-section shares one DTLS transport, whose role comes from the m-section the
answerer tagged (the first mid of the answer's `a=group:BUNDLE`; RFC 8843 §7.3.1, `setup` is a
TRANSPORT attribute, RFC 8859). aiortc 1.16 instead applies each m-section's `a=setup` to that
shared transport in turn, so the LAST m-section wins.

Firefox 153, answering a server re-offer (`a=setup:actpass` everywhere), keeps `passive` on the
m-sections it already had but writes `active` on the new bundled ones, while its transport stays
the DTLS server. Applied as is, that answer turned the server into a DTLS server too; when it
arrived before the server's ICE checks completed (DTLS starts after ICE), both ends waited for a
ClientHello: ICE connected, no DTLS, "not connected in time". `unify_bundled_setup` rewrites the
bundled m-sections' `a=setup` to the tagged one's before aiortc reads the answer.
"""

from __future__ import annotations

import re

_LINE_END = re.compile(r"\r?\n")
_SETUP_VALUES = frozenset({"active", "passive", "actpass", "holdconn"})


def unify_bundled_setup(sdp_text: str) -> str:
    """`sdp_text` with every bundled m-section's `a=setup` set to that of its group's tagged
    (first) m-section; unchanged when there is no BUNDLE group or the tagged m-section has no
    valid `a=setup`."""
    newline = "\r\n" if "\r\n" in sdp_text else "\n"
    lines = _LINE_END.split(sdp_text)
    groups: list[list[str]] = []
    sections: list[int] = []  # index of each m= line
    for index, line in enumerate(lines):
        if line.startswith("m="):
            sections.append(index)
        elif not sections and line.startswith("a=group:BUNDLE"):
            groups.append(line[len("a=group:BUNDLE"):].split())
    if not groups or not sections:
        return sdp_text
    bounds = list(zip(sections, [*sections[1:], len(lines)], strict=True))
    mid_of: dict[str, tuple[int, int]] = {}
    for start, end in bounds:
        for line in lines[start:end]:
            if line.startswith("a=mid:"):
                mid_of.setdefault(line[len("a=mid:"):].strip(), (start, end))
                break
    for mids in groups:
        if not mids or mids[0] not in mid_of:
            continue
        tagged = _setup_line(lines, *mid_of[mids[0]])
        if tagged is None:
            continue
        role = lines[tagged][len("a=setup:"):].strip()
        if role not in _SETUP_VALUES:
            continue
        for mid in mids[1:]:
            where = mid_of.get(mid)
            setup = _setup_line(lines, *where) if where is not None else None
            if setup is not None:
                lines[setup] = f"a=setup:{role}"
    return newline.join(lines)


def _setup_line(lines: list[str], start: int, end: int) -> int | None:
    for index in range(start, end):
        if lines[index].startswith("a=setup:"):
            return index
    return None
