"""The recording feature's services, as one value the composition root builds (services.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..recording.evidence import ConsentEvidence
from ..recording.keys import Keyring, RecordingKeys
from ..recording.service import RecordingService


@dataclass(frozen=True)
class RecordingServices:
    keyring: Keyring
    keys: RecordingKeys
    service: RecordingService
    evidence: ConsentEvidence
    recordings_dir: Path
