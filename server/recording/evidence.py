"""Consent evidence (DESIGN D6, D7), layer 3: every ConsentEvent goes to the audit log and to
the consultation's consent record document ``("recording_consent", consultation_id)``, from
which `export_consent_record` rebuilds the record (`teleconsult recordings consent <cid>`).

Ids and versions only: participant ids, request ids, consent text version — no names.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict
from typing import Any

from ..audit import AuditLog
from ..store.base import DocumentStore
from .consent import ConsentEvent, export_consent_record

CONSENT_DOC_KIND = "recording_consent"


class ConsentEvidence:
    def __init__(self, store: DocumentStore, audit: AuditLog) -> None:
        self._store = store
        self._audit = audit

    async def record(self, events: Iterable[ConsentEvent]) -> None:
        """Append events (in order) to the audit log and the consultation's consent record."""
        by_cid: dict[str, list[ConsentEvent]] = {}
        for event in events:
            target = {"participant": event.participant_id,
                      "text_version": event.text_version}
            if event.request_id:
                target["request"] = event.request_id
            await self._audit.record(
                f"recording.consent_{event.action}", actor=_actor(event.participant_id),
                target=target, consultation_id=event.consultation_id)
            by_cid.setdefault(event.consultation_id, []).append(event)
        for cid, mine in by_cid.items():
            doc = await self._store.get_doc(CONSENT_DOC_KIND, cid) or {"consultation_id": cid,
                                                                      "events": []}
            events_json: list[dict[str, Any]] = list(doc.get("events", []))
            events_json.extend(asdict(e) for e in mine)
            await self._store.put_doc(CONSENT_DOC_KIND, cid,
                                      {"consultation_id": cid, "events": events_json})

    async def events(self, consultation_id: str) -> list[ConsentEvent]:
        doc = await self._store.get_doc(CONSENT_DOC_KIND, consultation_id)
        if doc is None:
            return []
        return [ConsentEvent(**{k: e[k] for k in ConsentEvent.__dataclass_fields__})
                for e in doc.get("events", [])]

    async def export(self, consultation_id: str) -> str:
        return export_consent_record(consultation_id, await self.events(consultation_id))


def _actor(participant_id: str) -> str | None:
    return None if participant_id == "system" else participant_id
