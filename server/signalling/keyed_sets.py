"""Sets of live connections by key (a staff session, an account): add, discard (the key goes
with its last member), the members of a key, take a key's set out, count them all."""

from __future__ import annotations

from typing import Generic, TypeVar

V = TypeVar("V")


class KeyedSets(Generic[V]):
    def __init__(self) -> None:
        self._sets: dict[str, set[V]] = {}

    def add(self, key: str, value: V) -> None:
        self._sets.setdefault(key, set()).add(value)

    def discard(self, key: str, value: V) -> None:
        members = self._sets.get(key)
        if members is not None:
            members.discard(value)
            if not members:
                del self._sets[key]

    def members(self, key: str) -> list[V]:
        """A copy: the caller may add and discard while it goes through them."""
        return list(self._sets.get(key, ()))

    def pop(self, key: str) -> set[V]:
        return self._sets.pop(key, set())

    def __contains__(self, key: object) -> bool:
        return key in self._sets

    def key_list(self) -> list[str]:
        """A copy of the keys, as `members`."""
        return list(self._sets)

    def count(self) -> int:
        return sum(len(s) for s in self._sets.values())
