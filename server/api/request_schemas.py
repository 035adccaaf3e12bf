"""Request bodies as frozen dataclasses, one per route that takes one (docs/api.md).

Each `from_json` checks shape only (presence, JSON types, field lengths) with the stable error
codes the services use; the services keep the domain rules. `read_body` (bodies.py) feeds them.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InvalidInput
from .bodies import JSONObject, TextBody, optional_int, optional_number, optional_str, optional_text, text


def _one_factor(data: JSONObject, *names: str) -> list[str | None]:
    """The optional text fields `names`, in that order; exactly one of them must be sent."""
    values = [optional_text(data, name) for name in names]
    if sum(v is not None for v in values) != 1:
        raise InvalidInput("Send exactly one of the accepted factors.", code="invalid_input")
    return values


def _token(data: JSONObject) -> str:
    """A link's token; one of the wrong JSON type is "" (answered like any invalid link)."""
    token = data.get("token")
    return token if isinstance(token, str) else ""


# -- staff authentication ---------------------------------------------------------------------------


@dataclass(frozen=True)
class EnrolStart(TextBody):
    token: str


@dataclass(frozen=True)
class EnrolFinish(TextBody):
    enrolment_id: str
    password: str
    code: str
    email: str | None
    display_name: str | None


@dataclass(frozen=True)
class Credentials:
    email: str
    password: str
    shared_computer: bool = False  # "this is a shared computer": short idle timeout

    @classmethod
    def from_json(cls, data: JSONObject) -> Credentials:
        shared = data.get("shared_computer", False)
        if not isinstance(shared, bool):
            raise InvalidInput("shared_computer must be true or false.", code="invalid_input")
        return cls(text(data, "email"), text(data, "password"), shared)


@dataclass(frozen=True)
class SecondFactor:
    """POST /api/login/mfa: `{code}` or `{recovery_code}`."""

    code: str | None
    recovery_code: str | None

    @classmethod
    def from_json(cls, data: JSONObject) -> SecondFactor:
        code, recovery = _one_factor(data, "code", "recovery_code")
        return cls(code, recovery)


@dataclass(frozen=True)
class Reauth:
    """POST /api/reauth: `{password}` or `{code}` (a recovery code is refused)."""

    password: str | None
    code: str | None

    @classmethod
    def from_json(cls, data: JSONObject) -> Reauth:
        code, recovery, password = _one_factor(data, "code", "recovery_code", "password")
        if recovery is not None:
            raise InvalidInput("Use your password or a code from your app.", code="invalid_input")
        return cls(password, code)


@dataclass(frozen=True)
class PasswordChange(TextBody):
    current_password: str
    new_password: str


# -- consultations, invites, joining ----------------------------------------------------------------


@dataclass(frozen=True)
class NewConsultation:
    label: str | None
    scheduled_at: float | None
    max_participants: int | None
    e2ee: str | None  # E2EE policy: required | preferred | off (the service checks the value)

    @classmethod
    def from_json(cls, data: JSONObject) -> NewConsultation:
        return cls(
            optional_str(data, "label", code="invalid_label", message="The label must be text."),
            optional_number(data, "scheduled_at", code="invalid_scheduled_at",
                            message="scheduled_at must be a time (seconds since the epoch)."),
            optional_int(data, "max_participants", code="invalid_max_participants",
                         message="max_participants must be a whole number."),
            optional_str(data, "e2ee", code="invalid_e2ee",
                         message='e2ee must be "required", "preferred" or "off".'),
        )


@dataclass(frozen=True)
class NewInvite:
    role: str

    @classmethod
    def from_json(cls, data: JSONObject) -> NewInvite:
        role = optional_str(data, "role", code="invalid_role", message='role must be "patient" or "guest".')
        if role is None:
            raise InvalidInput('role must be "patient" or "guest".', code="invalid_role")
        return cls(role)


@dataclass(frozen=True)
class JoinRequest:
    token: str  # a token of the wrong JSON type is "" here: the invite check answers invite_invalid
    display_name: str | None
    device_check: str | None
    consultation_id: str | None

    @classmethod
    def from_json(cls, data: JSONObject) -> JoinRequest:
        return cls(
            _token(data),
            optional_str(data, "display_name", code="invalid_display_name", message="Please type your name."),
            optional_str(data, "device_check", code="invalid_device_check",
                         message='device_check must be "passed", "failed" or "skipped".'),
            optional_str(data, "consultation_id", code="invalid_body",
                         message="consultation_id must be a string."),
        )


@dataclass(frozen=True)
class LinkCheckRequest:
    token: str  # a token of the wrong JSON type is "" here: answered like any invalid link

    @classmethod
    def from_json(cls, data: JSONObject) -> LinkCheckRequest:
        return cls(_token(data))


# -- browser reports ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CspReport:
    """POST /api/csp-report: `{"csp-report": {"violated-directive", "blocked-uri", …}}`."""

    directive: str
    blocked: str

    @classmethod
    def from_json(cls, data: JSONObject) -> CspReport:
        report = data.get("csp-report", {})
        if not isinstance(report, dict):
            raise InvalidInput("csp-report must be an object.", code="invalid_body")
        directive, blocked = report.get("violated-directive"), report.get("blocked-uri")
        return cls(directive[:64] if isinstance(directive, str) else "?",
                   blocked[:200] if isinstance(blocked, str) else "")
