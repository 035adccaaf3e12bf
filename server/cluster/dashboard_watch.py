"""Which accounts have a doctor's dashboard open on the other nodes, as their announcements on
the shared dashboards channel tell (docs/cluster.md "The doctor's dashboard").

Each node announces `watch` (an account's first dashboard socket there opened: on; its last
closed: off) and, every announcement period, its whole set (`watch-all`, which replaces what
was known of that node). An entry not re-announced for `expiry_s` lapses, so a dead node's
dashboards stop counting. Plain bookkeeping on an injected clock: no Redis here.

When it cannot tell, `may_watch` says True: while this node is not listening on the channel
(Redis away) and for `settle_s` after it (re)subscribed, since announcements made meanwhile
were missed and a full round is needed to hear every node again.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..clock import Clock


class RemoteDashboards:
    def __init__(self, clock: Clock, *, expiry_s: float, settle_s: float) -> None:
        self._clock = clock
        self._expiry_s = expiry_s
        self._settle_s = settle_s
        self._heard: dict[str, dict[str, float]] = {}  # node -> account -> last heard (monotonic)

    def watch(self, node: str, account: str, on: bool) -> None:
        accounts = self._heard.setdefault(node, {})
        if on:
            accounts[account] = self._clock.monotonic()
        else:
            accounts.pop(account, None)
        if not accounts:
            del self._heard[node]

    def replace(self, node: str, accounts: Iterable[str]) -> None:
        """`node`'s whole set, as it announced it just now."""
        now = self._clock.monotonic()
        fresh = dict.fromkeys(accounts, now)
        if fresh:
            self._heard[node] = fresh
        else:
            self._heard.pop(node, None)

    def settled(self, listening_since: float | None) -> bool:
        """True when what was heard can be trusted: listening (since that monotonic time,
        None: not now) for at least `settle_s`."""
        return listening_since is not None and self._clock.monotonic() - listening_since >= self._settle_s

    def may_watch(self, account: str, listening_since: float | None) -> bool:
        """True when another node announced a dashboard of `account` less than `expiry_s` ago,
        or when this node cannot tell (not settled)."""
        if not self.settled(listening_since):
            return True
        oldest = self._clock.monotonic() - self._expiry_s
        return any(accounts.get(account, oldest) > oldest for accounts in self._heard.values())

    def prune(self) -> None:
        """Forget entries that lapsed (their node stopped re-announcing them)."""
        oldest = self._clock.monotonic() - self._expiry_s
        for node in list(self._heard):
            live = {a: t for a, t in self._heard[node].items() if t > oldest}
            if live:
                self._heard[node] = live
            else:
                del self._heard[node]

    def account_count(self) -> int:
        """Distinct accounts with a live entry (after `prune`)."""
        return len({a for accounts in self._heard.values() for a in accounts})
