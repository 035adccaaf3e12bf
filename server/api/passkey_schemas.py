"""Request bodies of the passkey and password-check routes (passkey_routes.py), as frozen dataclasses
(DESIGN §5.5), read by bodies.read_body. Shape only (types, lengths); the services keep the rules."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import InvalidInput
from .bodies import JSONObject, TextBody, optional_text, text


def _credential(data: JSONObject) -> dict[str, Any]:
    value = data.get("credential")
    if not isinstance(value, dict):
        raise InvalidInput("The passkey answer is missing.", code="invalid_passkey_response")
    return value


def _flag(data: JSONObject, name: str) -> bool:
    value = data.get(name, False)
    if not isinstance(value, bool):
        raise InvalidInput(f"The field {name!r} must be true or false.", code="invalid_input")
    return value


@dataclass(frozen=True)
class PasskeyAnswer:
    """The browser's answer to a ceremony: `{ceremony_id, credential}` (+ `shared_computer` at login)."""

    ceremony_id: str
    credential: dict[str, Any]
    shared_computer: bool = False

    @classmethod
    def from_json(cls, data: JSONObject) -> PasskeyAnswer:
        return cls(text(data, "ceremony_id"), _credential(data), _flag(data, "shared_computer"))


@dataclass(frozen=True)
class NewPasskeyBody:
    ceremony_id: str
    credential: dict[str, Any]
    name: str

    @classmethod
    def from_json(cls, data: JSONObject) -> NewPasskeyBody:
        return cls(text(data, "ceremony_id"), _credential(data), text(data, "name"))


@dataclass(frozen=True)
class PasskeyName(TextBody):
    name: str


@dataclass(frozen=True)
class EnrolPasskeyOptions(TextBody):
    enrolment_id: str
    email: str | None
    display_name: str | None


@dataclass(frozen=True)
class EnrolPasskeyFinish:
    enrolment_id: str
    password: str
    ceremony_id: str
    credential: dict[str, Any]
    name: str
    email: str | None
    display_name: str | None

    @classmethod
    def from_json(cls, data: JSONObject) -> EnrolPasskeyFinish:
        return cls(text(data, "enrolment_id"), text(data, "password"),
                   text(data, "ceremony_id"), _credential(data), text(data, "name"),
                   optional_text(data, "email"), optional_text(data, "display_name"))


@dataclass(frozen=True)
class PasswordCheck:
    """POST /api/password/check: the strength meter. The password may be empty (score 0)."""

    password: str
    email: str | None
    display_name: str | None

    @classmethod
    def from_json(cls, data: JSONObject) -> PasswordCheck:
        password = data.get("password", "")
        if not isinstance(password, str) or len(password) > 300:
            raise InvalidInput("The field 'password' must be a string.", code="invalid_input")
        return cls(password, optional_text(data, "email"),
                   optional_text(data, "display_name"))
