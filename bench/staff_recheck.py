"""CPU of the open host sockets' periodic staff-session re-check (signalling/staff_sockets.py),
per round, with K doctors' sessions open: two store round trips per session, as the re-check
did before `68bddc5` (`staff_session_valid` for each: now a batch of one) against the batch
(`staff_sessions_valid`, two round trips in all), on the embedded SQLite store and, with
--redis-url, on Redis. Both ways run in this one process on the same sessions; the figures are
process CPU (`process_time`, so the store's executor thread counts) per round and per session.

    python -m bench.staff_recheck [--sessions 10,40] [--rounds 50] [--redis-url redis://…] [--smoke]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from bench.common import machine
from server.audit import AuditLog
from server.auth.services import AuthServices
from server.auth.sessions import STAGE_AUTH
from server.clock import SystemClock
from server.config import Settings
from server.store.base import Store
from server.store.redis import RedisStore
from server.store.sqlite import SQLiteStore


async def _sessions(auth: AuthServices, first: int, count: int) -> list[str]:
    refs = []
    for n in range(first, first + count):
        account, _token = await auth.add_user(email=f"bench.doctor{n}@example.test", role="doctor",
                                              display_name=f"Doctor {n}", actor=None)
        await auth.accounts.update(account.id, mfa_enrolled=True, password_hash="bench")  # as if enrolled
        _cookie, session = await auth.sessions.create(account.id, STAGE_AUTH)
        refs.append(session.id_hash)
    return refs


async def _cpu_per_round(rounds: int, round_: Callable[[], Awaitable[set[str]]], count: int) -> float:
    assert len(await round_()) == count  # every session valid: the real work, not a short cut
    started = time.process_time()
    for _ in range(rounds):
        await round_()
    return (time.process_time() - started) / rounds


async def _measure(label: str, store: Store, counts: list[int], rounds: int) -> None:
    settings = Settings(data_dir=Path(tempfile.mkdtemp()), recordings_dir=Path(tempfile.mkdtemp()))
    clock = SystemClock()
    auth = AuthServices.build(store, clock, settings, AuditLog(store, clock))
    made: list[str] = []
    for count in counts:
        made += await _sessions(auth, len(made), count - len(made))
        refs = made[:count]

        async def one_by_one(refs: list[str] = refs) -> set[str]:
            return {r for r in refs if await auth.staff_session_valid(r)}

        async def batch(refs: list[str] = refs) -> set[str]:
            return await auth.staff_sessions_valid(refs)

        old = await _cpu_per_round(rounds, one_by_one, count)
        new = await _cpu_per_round(rounds, batch, count)
        print(f"{label:7} K={count:3}  per round: one by one {old * 1e3:7.3f} ms, batch {new * 1e3:6.3f} ms "
              f"(x{new / old:.3f});  per session: {old / count * 1e6:6.1f} vs {new / count * 1e6:5.1f} us")
        print(f"SUMMARY staff_recheck store={label} sessions={count} old_ms={old * 1e3:.3f} "
              f"new_ms={new * 1e3:.3f} ratio={new / old:.3f}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", default="10,40")
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--redis-url", default="")
    parser.add_argument("--smoke", action="store_true", help="1 and 3 sessions, 3 rounds, SQLite only")
    args = parser.parse_args()
    if args.smoke:
        args.sessions, args.rounds, args.redis_url = "1,3", 3, ""
    print(f"# machine: {machine()}", flush=True)
    counts = sorted(int(c) for c in args.sessions.split(","))
    store: Store = await SQLiteStore.open(Path(tempfile.mkdtemp()) / "bench.sqlite3")
    try:
        await _measure("sqlite", store, counts, args.rounds)
    finally:
        await store.close()
    if args.redis_url:
        prefix = f"bench-recheck-{secrets.token_hex(4)}:"
        redis_store = await RedisStore.open(args.redis_url, prefix)
        try:
            await _measure("redis", redis_store, counts, args.rounds)
        finally:
            await redis_store.delete_all_with_prefix()
            await redis_store.close()


if __name__ == "__main__":
    asyncio.run(main())
