"""The doctor's live dashboard across nodes (issue #16, docs/cluster.md): the dashboard socket
on node B hears of a patient entering the waiting room of a consultation owned by node A —
live, and in the snapshot of a dashboard opened after — as it does on one node; and the owner
makes and publishes a status only while a dashboard of the host is open on some node (the
`watch` announcements), observed on the dashboards channel itself. Plus the bookkeeping of
those announcements (expiry, re-announcement, doubt) on a manual clock."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
from redis.asyncio import Redis

from client.media import PreparedMedia
from client.peer import MediaOptions
from server.clock import ManualClock
from server.cluster.dashboard_watch import RemoteDashboards
from tests.conftest import delete_redis_prefix, random_redis_prefix
from tests.helpers.cluster_helpers import (
    Participant,
    cluster_env,
    doctor_on,
    patient_on,
    provision,
    same_doctor_via,
    shared_redis_cluster,
    two_nodes_and_a_consultation,
)
from tests.helpers.ops_helpers import parse_samples, scrape, value
from tests.helpers.server_process import ServerProcess
from tests.helpers.waiting import wait_for_condition

TIMEOUT_S = 15.0
METRICS_TOKEN = secrets.token_urlsafe(24)
# Announcements every second (a remote entry lapses after 3 s, a node trusts what it heard 3 s
# after subscribing), and /metrics readable with a token: what these tests wait on.
FAST_WATCH = {"TELECONSULT_CLUSTER_DASHBOARD_ANNOUNCE_S": "1", "TELECONSULT_METRICS_TOKEN": METRICS_TOKEN}
SETTLED = "teleconsult_cluster_dashboard_watch_settled"
REMOTE_ACCOUNTS = "teleconsult_cluster_dashboard_remote_accounts"
STATUSES = "teleconsult_dashboard_statuses_total"


async def _metric(node: ServerProcess, name: str, labels: dict[str, str] | None = None) -> float:
    status, text = await scrape(f"{node.base_url}/metrics", METRICS_TOKEN)
    assert status == 200, status
    return value(parse_samples(text), name, labels)


async def _settled(*nodes: ServerProcess) -> None:
    """Until every node trusts what it heard of the others' dashboards (bounded)."""
    async def all_settled() -> bool:
        return all([await _metric(n, SETTLED) == 1 for n in nodes])
    await wait_for_condition(all_settled, timeout_s=TIMEOUT_S, interval_s=0.1, what="watch bookkeeping settled")


async def _skipped_beyond(node: ServerProcess, count: float) -> None:
    async def moved() -> bool:
        return await _metric(node, STATUSES, {"outcome": "skipped"}) > count
    await wait_for_condition(moved, timeout_s=TIMEOUT_S, interval_s=0.05, what="a status skipped on the owner")


class ChannelTap:
    """The cluster's dashboards channel as a third party hears it (this test's own Redis
    client, under the test's prefix), plus a channel of the test's own for marks: Redis hands
    one subscriber its messages in the order it processed the PUBLISHes, so what a node
    published before a mark is read before it."""

    def __init__(self, redis_url: str, prefix: str) -> None:
        self.client: Redis = Redis.from_url(redis_url, decode_responses=True)
        self.channel = f"{prefix}cluster:dashboards"
        self.mark_channel = f"{prefix}test:dashboards-mark"
        self.heard: list[dict[str, Any]] = []
        self._pubsub = self.client.pubsub(ignore_subscribe_messages=True)

    async def start(self) -> None:
        await self._pubsub.subscribe(self.channel, self.mark_channel)

    async def read_until(self, found: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
        """Read (keeping everything in `heard`) until a message `found` accepts (bounded)."""
        async def read() -> dict[str, Any]:
            while True:
                message = await self._pubsub.get_message(timeout=1.0)
                if message is None:
                    continue
                data = dict(json.loads(message["data"]))
                self.heard.append(data)
                if found(data):
                    return data
        try:
            return await asyncio.wait_for(read(), TIMEOUT_S)
        except TimeoutError:
            raise AssertionError(f"the dashboards channel never carried {what}") from None

    async def mark(self) -> list[dict[str, Any]]:
        """Everything the channel carried before now (since the last mark)."""
        start = len(self.heard)
        token = secrets.token_hex(4)
        await self.client.publish(self.mark_channel, json.dumps({"mark": token}))
        await self.read_until(lambda m: m.get("mark") == token, "the test's mark")
        return self.heard[start:-1]

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._pubsub.aclose()  # type: ignore[no-untyped-call]
        await self.client.aclose()


@contextlib.asynccontextmanager
async def tapped(redis_url: str, prefix: str) -> AsyncIterator[ChannelTap]:
    tap = ChannelTap(redis_url, prefix)
    try:
        await tap.start()
        yield tap
    finally:
        await tap.close()


def _statuses_of(messages: list[dict[str, Any]], cid: str) -> list[dict[str, Any]]:
    return [m for m in messages if m.get("k") == "status" and m.get("status", {}).get("consultation_id") == cid]


async def _status(ws: aiohttp.ClientWebSocketResponse, cid: str, waiting: int) -> dict[str, Any]:
    """The first consultation-status of `cid` with `waiting` patients (bounded)."""
    async def read() -> dict[str, Any]:
        while True:
            msg = await ws.receive()
            assert msg.type == aiohttp.WSMsgType.TEXT, msg
            data = json.loads(msg.data)
            if data.get("consultation_id") == cid and len(data.get("waiting", [])) == waiting:
                return dict(data)
    return await asyncio.wait_for(read(), TIMEOUT_S)


async def test_a_dashboard_on_node_b_hears_of_the_waiting_room_on_node_a(tmp_path: Path, redis_url: str) -> None:
    prefix = random_redis_prefix()
    patient: Participant | None = None
    try:
        with cluster_env(tmp_path, redis_url, prefix) as cluster:
            first, second = cluster.start_node(FAST_WATCH), cluster.start_node(FAST_WATCH)
            ids = await cluster.node_ids()
            await _settled(first, second)  # past the start's doubt: only the announcements count
            creds = await provision(cluster, first)
            doctor = await doctor_on(second, creds)
            cid = await doctor.create_consultation(label="cluster dashboard")
            lease = await cluster.lease_of(cid)
            assert lease is not None
            owner, other = (first, second) if ids[first.port] == lease[0] else (second, first)
            # The doctor's dashboard on the node that does not own the consultation.
            dashboard_api = await same_doctor_via(doctor, other)  # one browser, one sign-in
            feed = await dashboard_api.session.ws_connect(f"{other.base_url}/api/dashboard/ws",
                                                         headers={"Origin": other.base_url})
            try:
                patient = await patient_on(owner, doctor, cid, "Pat Waiting",
                                           MediaOptions(prepared=PreparedMedia.build(seconds=1.0)))
                client = await patient.connect()
                assert client.state == "waiting"
                live = await _status(feed, cid, waiting=1)
                assert [w["display_name"] for w in live["waiting"]] == ["Pat Waiting"]
                assert live["host_present"] is False
                # A dashboard opened now, on that same node, gets it in its snapshot.
                late = await dashboard_api.session.ws_connect(f"{other.base_url}/api/dashboard/ws",
                                                             headers={"Origin": other.base_url})
                try:
                    snap = await _status(late, cid, waiting=1)
                    assert snap["waiting"][0]["participant_id"] == live["waiting"][0]["participant_id"]
                finally:
                    await late.close()
                # The patient leaves: the dashboard on node B hears that too.
                await patient.close()
                patient = None
                await _status(feed, cid, waiting=0)
            finally:
                await feed.close()
                await doctor.close()
    finally:
        if patient is not None:
            await patient.close()
        await delete_redis_prefix(redis_url, prefix)


async def test_the_owner_publishes_statuses_only_while_a_dashboard_is_open_somewhere(
        tmp_path: Path, redis_url: str) -> None:
    """No dashboard open: a patient entering the waiting room makes no status on the channel.
    A dashboard opened on node B: its `watch` comes before its snapshot ask, and the owner A
    then publishes live. Closed: its `watch` off reaches A and A is silent again."""
    async with shared_redis_cluster(tmp_path, redis_url) as cluster, tapped(redis_url, cluster.prefix) as tap:
        placed = await two_nodes_and_a_consultation(cluster, "dashboard watch", FAST_WATCH)
        owner, other, cid = placed.owner, placed.other, placed.cid
        other_id = placed.ids[other.port]
        await _settled(owner, other)
        published = {"outcome": "published"}

        # 1. Nobody watches: the patient waits, the owner decides (skipped), nothing on the wire.
        skipped = await _metric(owner, STATUSES, {"outcome": "skipped"})
        sent = await _metric(owner, STATUSES, published)
        first = cluster.keep(await patient_on(other, placed.doctor, cid, "Pat One", MediaOptions(
            prepared=PreparedMedia.build(seconds=1.0))))
        assert (await first.connect()).state == "waiting"
        await _skipped_beyond(owner, skipped)
        assert _statuses_of(await tap.mark(), cid) == []
        assert await _metric(owner, STATUSES, published) == sent

        # 2. A dashboard on B: `watch` on, then the snapshot ask, then A's answer.
        dashboard_api = await same_doctor_via(placed.doctor, other)
        feed = await dashboard_api.session.ws_connect(f"{other.base_url}/api/dashboard/ws",
                                                     headers={"Origin": other.base_url})
        try:
            snap = await _status(feed, cid, waiting=1)
            assert [w["display_name"] for w in snap["waiting"]] == ["Pat One"]
            await tap.read_until(lambda m: m.get("k") == "status"
                                 and m.get("status", {}).get("consultation_id") == cid, "the snapshot answer")
            kinds = [(m.get("k"), m.get("from")) for m in tap.heard if m.get("k") in ("watch", "snapshot")]
            assert kinds.index(("watch", other_id)) < kinds.index(("snapshot", other_id)), kinds
            watch_on = next(m for m in tap.heard if m.get("k") == "watch" and m.get("from") == other_id)
            assert watch_on == {"k": "watch", "account": watch_on["account"], "on": True, "from": other_id}

            async def owner_knows(count: int) -> bool:
                return await _metric(owner, REMOTE_ACCOUNTS) == count
            await wait_for_condition(lambda: owner_knows(1), timeout_s=TIMEOUT_S, interval_s=0.05,
                                     what="the owner knows of the dashboard on B")
            # A second patient: a live status from the owner (not a snapshot: none was asked).
            second = cluster.keep(await patient_on(owner, placed.doctor, cid, "Pat Two", MediaOptions(
                prepared=PreparedMedia.build(seconds=1.0))))
            await second.connect()
            live = await _status(feed, cid, waiting=2)
            assert sorted(w["display_name"] for w in live["waiting"]) == ["Pat One", "Pat Two"]
        finally:
            await feed.close()

        # 3. Closed: B says `watch` off, the owner forgets it and stops publishing.
        off = await tap.read_until(lambda m: m.get("k") == "watch" and m.get("from") == other_id
                                   and m.get("on") is False, "the watch off")
        assert off["account"] == watch_on["account"]
        await wait_for_condition(lambda: owner_knows(0), timeout_s=TIMEOUT_S, interval_s=0.05,
                                 what="the owner forgot the dashboard on B")
        await tap.mark()
        skipped = await _metric(owner, STATUSES, {"outcome": "skipped"})
        sent = await _metric(owner, STATUSES, published)
        await second.close()  # a lobby change: Pat Two leaves the waiting room
        await _skipped_beyond(owner, skipped)
        assert _statuses_of(await tap.mark(), cid) == []
        assert await _metric(owner, STATUSES, published) == sent


def test_remote_dashboards_expire_and_are_replaced_by_the_whole_set() -> None:
    clock = ManualClock()
    remote = RemoteDashboards(clock, expiry_s=30.0, settle_s=12.0)
    listening_since = clock.monotonic()
    # Not settled yet (a full round may not have arrived): in doubt, every account counts.
    assert remote.may_watch("acct-1", listening_since)
    assert not remote.settled(listening_since)
    clock.advance(12.0)
    assert remote.settled(listening_since)
    assert not remote.may_watch("acct-1", listening_since)
    # on / off from one node
    remote.watch("node-b", "acct-1", True)
    assert remote.may_watch("acct-1", listening_since)
    remote.watch("node-b", "acct-1", False)
    assert not remote.may_watch("acct-1", listening_since)
    assert remote.account_count() == 0
    # an entry lapses 30 s after it was last heard, unless re-announced
    remote.watch("node-b", "acct-1", True)
    remote.watch("node-c", "acct-2", True)
    clock.advance(20.0)
    remote.replace("node-b", ["acct-1"])  # node B's periodic round; node C died
    clock.advance(15.0)
    assert remote.may_watch("acct-1", listening_since)
    assert not remote.may_watch("acct-2", listening_since)
    remote.prune()
    assert remote.account_count() == 1
    # the whole set replaces: an `off` that was missed is corrected by the next round
    remote.watch("node-b", "acct-3", True)
    remote.replace("node-b", ["acct-3"])
    assert not remote.may_watch("acct-1", listening_since)
    assert remote.may_watch("acct-3", listening_since)
    remote.replace("node-b", [])
    assert remote.account_count() == 0
    # Redis away (not listening) or just back: doubt again, then what is heard counts again
    assert remote.may_watch("acct-1", None)
    back = clock.monotonic()
    clock.advance(5.0)
    assert remote.may_watch("acct-1", back)
    clock.advance(7.0)
    assert not remote.may_watch("acct-1", back)
    # a watch-off of an account never announced, or from an unknown node, is harmless
    remote.watch("node-z", "acct-9", False)
    assert remote.account_count() == 0


async def test_a_node_that_stops_cleanly_withdraws_its_dashboards_at_once(tmp_path: Path, redis_url: str) -> None:
    """A node stopped with a dashboard open (SIGTERM) says so on the channel before it exits:
    the owner forgets that dashboard at once, not after the entry lapses (3 periods)."""
    slow = {**FAST_WATCH, "TELECONSULT_CLUSTER_DASHBOARD_ANNOUNCE_S": "10"}
    lapse_s = 3 * 10  # an entry not re-announced lapses after 3 periods
    async with shared_redis_cluster(tmp_path, redis_url) as cluster, tapped(redis_url, cluster.prefix) as tap:
        placed = await two_nodes_and_a_consultation(cluster, "dashboard stop", slow)
        owner, other = placed.owner, placed.other
        other_id = placed.ids[other.port]
        dashboard_api = await same_doctor_via(placed.doctor, other)
        feed = await dashboard_api.session.ws_connect(f"{other.base_url}/api/dashboard/ws",
                                                     headers={"Origin": other.base_url})

        async def owner_knows(count: int) -> bool:
            return await _metric(owner, REMOTE_ACCOUNTS) == count
        await wait_for_condition(lambda: owner_knows(1), timeout_s=TIMEOUT_S, interval_s=0.05,
                                 what="the owner knows of the dashboard on B")
        stopped_at = asyncio.get_running_loop().time()
        other.process.terminate()
        await asyncio.to_thread(other.process.wait, TIMEOUT_S)
        assert other.process.returncode == 0, other.log_text()
        await tap.read_until(lambda m: m.get("from") == other_id and (
            (m.get("k") == "watch" and m.get("on") is False)
            or (m.get("k") == "watch-all" and m.get("accounts") == [])), "the stopping node's withdrawal")
        await wait_for_condition(lambda: owner_knows(0), timeout_s=TIMEOUT_S, interval_s=0.05,
                                 what="the owner forgot the dashboard of the stopped node")
        assert asyncio.get_running_loop().time() - stopped_at < lapse_s  # withdrawn, not lapsed
        await feed.close()
