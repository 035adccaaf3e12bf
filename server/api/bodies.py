"""The one request-body parser (DESIGN §5.5): JSON in, a frozen dataclass out.

Every route that takes a body (and every state-changing route that takes none) calls
`read_body(request, Schema)`. Any decoding failure — not UTF-8, not JSON, nested deeper than the
decoder allows (RecursionError), not an object, over MAX_BODY_BYTES — is a domain error the
middleware answers as a 4xx JSON error: nothing raises past the boundary, nothing is logged with
a traceback. A schema's `from_json` checks the shape of its fields (types, lengths); services
keep the domain rules (ranges, states).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Protocol, Self, TypeVar, cast

from aiohttp import web

from ..errors import InvalidInput, PayloadTooLarge

MAX_BODY_BYTES = 16 * 1024
MAX_FIELD = 512

JSONObject = Mapping[str, Any]


class BodySchema(Protocol):
    @classmethod
    def from_json(cls, data: JSONObject) -> Self: ...


S = TypeVar("S", bound=BodySchema)


def invalid_body(message: str = "The request body must be a JSON object.") -> InvalidInput:
    return InvalidInput(message, code="invalid_body")


def decode_object(raw: bytes) -> JSONObject:
    """Bytes → a JSON object (an empty body is `{}`); InvalidInput(invalid_body) otherwise."""
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise invalid_body() from None
    if not isinstance(data, dict):
        raise invalid_body()
    return data


async def read_object(request: web.Request, *, max_bytes: int = MAX_BODY_BYTES) -> JSONObject:
    if (request.content_length or 0) > max_bytes:
        raise PayloadTooLarge("The request body is too large.")
    raw = await request.read()  # bounded by the app's client_max_size
    if len(raw) > max_bytes:
        raise PayloadTooLarge("The request body is too large.")
    return decode_object(raw)


async def read_body(request: web.Request, schema: type[S], *, max_bytes: int = MAX_BODY_BYTES) -> S:
    return schema.from_json(await read_object(request, max_bytes=max_bytes))


# -- field readers (shape only) ------------------------------------------------------------------


def text(data: JSONObject, name: str) -> str:
    """A required non-empty string of at most MAX_FIELD characters."""
    value = data.get(name)
    if not isinstance(value, str) or not value or len(value) > MAX_FIELD:
        raise InvalidInput(f"The field {name!r} is required (a non-empty string).", code="invalid_input")
    return value


def optional_text(data: JSONObject, name: str) -> str | None:
    return None if data.get(name) is None else text(data, name)


def optional_str(data: JSONObject, name: str, *, code: str, message: str) -> str | None:
    """A string or absent/null (any length: the service checks the content)."""
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(message, code=code)
    return value


def optional_number(data: JSONObject, name: str, *, code: str, message: str) -> float | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(message, code=code)
    return float(value)


def optional_int(data: JSONObject, name: str, *, code: str, message: str) -> int | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(message, code=code)
    return value


class TextBody:
    """Base of a body dataclass whose fields are all text, read in field order: a `str` field
    with `text` (required), a `str | None` one with `optional_text`."""

    @classmethod
    def from_json(cls, data: JSONObject) -> Self:
        values: list[str | None] = []
        for f in fields(cast(Any, cls)):
            if f.type == "str":
                values.append(text(data, f.name))
            elif f.type == "str | None":
                values.append(optional_text(data, f.name))
            else:
                raise TypeError(f"{cls.__name__}.{f.name}: a TextBody field is str or str | None")
        return cast(Any, cls)(*values)  # type: ignore[no-any-return]


# -- the schema of a route that takes no body ------------------------------------------------------


@dataclass(frozen=True)
class NoBody:
    """A state-changing route without a body: empty, `{}` or any JSON object (fields ignored)."""

    @classmethod
    def from_json(cls, data: JSONObject) -> NoBody:
        return cls()
