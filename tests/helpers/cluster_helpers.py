"""Several real server processes (nodes) on one Redis, for the cluster tests (docs/cluster.md):
each its own process and port, all sharing the key material (one data directory here; on
separate machines the operator copies the two key files)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

from redis.asyncio import Redis

from client.api import ApiClient, token_from_link
from client.media import PreparedMedia
from client.participant import ConsultationClient
from client.peer import MediaOptions, MediaPeer
from client.provision import StaffCredentials, provision_doctor
from tests.conftest import delete_redis_prefix, random_redis_prefix
from tests.helpers.server_process import REPO, ServerProcess, running_server, server_env
from tests.helpers.waiting import wait_for_condition


class Closeable(Protocol):
    async def close(self) -> None: ...


C = TypeVar("C", bound=Closeable)


@dataclass
class Cluster:
    tmp_path: Path
    env: dict[str, str]
    redis_url: str
    prefix: str
    nodes: list[ServerProcess] = field(default_factory=list)
    stack: ExitStack = field(default_factory=ExitStack)
    kept: list[Closeable] = field(default_factory=list)

    def start_node(self, extra: Mapping[str, str] | None = None, args: list[str] | None = None) -> ServerProcess:
        node = self.stack.enter_context(running_server(self.tmp_path, {**self.env, **(extra or {})}, args))
        self.nodes.append(node)
        return node

    async def lease_of(self, cid: str) -> tuple[str, int] | None:
        async with Redis.from_url(self.redis_url, decode_responses=True) as client:
            return _lease(await client.get(self._lease_key(cid)))

    def lease_of_sync(self, cid: str) -> tuple[str, int] | None:
        """lease_of for sync tests (Playwright's sync API runs its own loop)."""
        import redis

        client = redis.Redis.from_url(self.redis_url, decode_responses=True)
        try:
            return _lease(client.get(self._lease_key(cid)))
        finally:
            client.close()

    def _lease_key(self, cid: str) -> str:
        return f"{self.prefix}cluster:lease:{cid}"

    async def node_ids(self) -> dict[int, str]:
        return await asyncio.to_thread(self.node_ids_sync)

    async def node_ids_all(self) -> list[tuple[int, str]]:
        return await asyncio.to_thread(self.node_ids_all_sync)

    def node_ids_all_sync(self) -> list[tuple[int, str]]:
        """(port, node id) of every live node (from `node list`): workers share a port."""
        result = run_cli_env(["node", "list"], self.cli_env())
        assert result.returncode == 0, result.stderr
        found = []
        for line in result.stdout.splitlines():
            node, _state, _load, address, _pid = line.split("\t")
            found.append((int(address.rpartition(":")[2]), node))
        return found

    def node_ids_sync(self) -> dict[int, str]:
        """port -> node id of every live node (one node a port)."""
        return dict(self.node_ids_all_sync())

    def keep(self, closeable: C) -> C:
        """Have `closeable` (a participant, a client, an HTTP session) closed by `close_kept()`."""
        self.kept.append(closeable)
        return closeable

    async def close_kept(self) -> None:
        """Close what was kept, the last kept first (a host before the doctor's session it
        shares); idempotent."""
        while self.kept:
            await self.kept.pop().close()

    def cli_env(self) -> dict[str, str]:
        return server_env(self.tmp_path, self.env)


def _lease(value: object) -> tuple[str, int] | None:
    """A lease as Redis holds it (`<node>:<epoch>`), as (node, epoch)."""
    if value is None:
        return None
    node, _, epoch = str(value).rpartition(":")
    return node, int(epoch)


def run_cli_env(args: list[str], env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "server", *args], env=dict(env), cwd=REPO,
                          capture_output=True, text=True, timeout=60, check=False)


@contextmanager
def cluster_env(tmp_path: Path, redis_url: str, prefix: str) -> Iterator[Cluster]:
    # One process per node here (with Redis `serve` would start one worker per core).
    env = {"TELECONSULT_REDIS_URL": redis_url, "TELECONSULT_REDIS_PREFIX": prefix, "TELECONSULT_WORKERS": "1"}
    cluster = Cluster(tmp_path, env, redis_url, prefix)
    with cluster.stack:
        yield cluster


async def provision(cluster: Cluster, node: ServerProcess) -> StaffCredentials:
    # The CLI prints a full enrolment link only when it knows the public URL.
    env = {**cluster.cli_env(), "TELECONSULT_PUBLIC_URL": node.base_url}
    return await provision_doctor(node.base_url, env, "dr.cluster@example.test", cwd=REPO)


async def doctor_on(node: ServerProcess, creds: StaffCredentials) -> ApiClient:
    api = await ApiClient.open(node.base_url)
    await api.login_staff(creds.email, creds.password, creds.totp_secret)
    return api


async def same_doctor_via(doctor: ApiClient, node: ServerProcess) -> ApiClient:
    """The same browser (its session cookie: one login, a TOTP code counts once) talking to
    another node. Shares `doctor`'s HTTP session: close only `doctor`."""
    api = ApiClient(node.base_url, doctor.session)
    await api.refresh_csrf()
    return api


@dataclass
class Participant:
    """A Python participant that can reconnect on its session (a fresh room token for the host,
    the participant cookie for a patient) — what the browser's call page does."""

    api: ApiClient
    cid: str
    name: str
    options: MediaOptions
    host: bool = False
    client: ConsultationClient | None = None

    async def connect(self) -> ConsultationClient:
        token = await self.api.room_token(self.cid) if self.host else None
        self.client = ConsultationClient(self.api, self.cid, MediaPeer(self.name, self.options),
                                         room_token=token, auto_admit=self.host)
        await self.client.connect()
        return self.client

    async def reconnect(self, timeout_s: float) -> ConsultationClient:
        """Close what is left and connect again until welcomed (the owner may be moving)."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        if self.client is not None:
            await self.client.close()
        while True:
            try:
                return await self.connect()
            except (TimeoutError, ConnectionError, OSError, AssertionError, RuntimeError):
                if self.client is not None:
                    await self.client.close()
                if asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(0.2)  # retry back-off of a reconnecting client

    @property
    def connected(self) -> ConsultationClient:
        """The client of the last `connect()`."""
        assert self.client is not None, "not connected yet"
        return self.client

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()
        if not self.host:  # a host's HTTP session belongs to its doctor
            await self.api.close()


async def patient_on(node: ServerProcess, doctor: ApiClient, cid: str, name: str,
                     options: MediaOptions) -> Participant:
    api = await ApiClient.open(node.base_url)
    await api.join(token_from_link(await doctor.invite(cid)), name)
    return Participant(api, cid, name, options)


def flowing(rx: ConsultationClient, tx: ConsultationClient, kinds: tuple[str, ...] = ("audio", "video"),
            above: dict[tuple[str, str], int] | None = None, count: int = 10) -> bool:
    base = above or {}
    return all(rx.media.frames_from(tx.participant_id, kind) > base.get((tx.participant_id, kind), 0) + count
               for kind in kinds)


def call_options() -> MediaOptions:
    """What a cluster test's participant sends: two seconds of prepared media, looped."""
    return MediaOptions(prepared=PreparedMedia.build(seconds=2.0))


@dataclass
class PlacedConsultation:
    """Two nodes, a doctor signed in on one of them, and a consultation placed at creation."""

    first: ServerProcess
    second: ServerProcess
    ids: dict[int, str]  # port -> node id
    doctor: ApiClient
    cid: str
    lease: tuple[str, int]

    @property
    def owner(self) -> ServerProcess:
        return self.first if self.ids[self.first.port] == self.lease[0] else self.second

    @property
    def other(self) -> ServerProcess:
        """The node that does not own the consultation: a socket there is relayed."""
        return self.second if self.owner is self.first else self.first


async def two_nodes_and_a_consultation(cluster: Cluster, label: str, extra: Mapping[str, str] | None = None, *,
                                       doctor_on_second: bool = False) -> PlacedConsultation:
    """Start two nodes (with `extra` settings), sign a doctor in on the first (or the second)
    and create a consultation; the doctor's session is kept (`cluster.keep`)."""
    first, second = cluster.start_node(extra), cluster.start_node(extra)
    ids = await cluster.node_ids()
    creds = await provision(cluster, first)
    doctor = await doctor_on(second if doctor_on_second else first, creds)
    cluster.keep(doctor)
    cid = await doctor.create_consultation(label=label)
    lease = await cluster.lease_of(cid)
    assert lease is not None
    return PlacedConsultation(first, second, ids, doctor, cid, lease)


async def host_and_patient(cluster: Cluster, doctor: ApiClient, cid: str, host_via: ServerProcess,
                           patient_via: ServerProcess) -> tuple[Participant, Participant]:
    """The doctor's session connected as the (auto-admitting) host through `host_via`, and a
    patient "Pat" who joined and connected through `patient_via`; both kept."""
    host = cluster.keep(Participant(await same_doctor_via(doctor, host_via), cid, "host", call_options(), host=True))
    await host.connect()
    patient = cluster.keep(await patient_on(patient_via, doctor, cid, "Pat", call_options()))
    await patient.connect()
    return host, patient


async def in_call_both_ways(host: Participant, patient: Participant,
                            what: str) -> tuple[ConsultationClient, ConsultationClient]:
    """Wait for the patient to be admitted and audio and video to flow both ways; the two
    connected clients (host, patient)."""
    hc, pc = host.connected, patient.connected
    await pc.wait_in_call(15)
    await wait_for_condition(lambda: flowing(pc, hc) and flowing(hc, pc), timeout_s=30, what=what)
    return hc, pc


@asynccontextmanager
async def shared_redis_cluster(tmp_path: Path, redis_url: str) -> AsyncIterator[Cluster]:
    """A cluster on the shared Redis under its own random prefix: what the test kept is closed
    before the nodes stop, and its keys are deleted after."""
    prefix = random_redis_prefix()
    try:
        with cluster_env(tmp_path, redis_url, prefix) as cluster:
            try:
                yield cluster
            finally:
                await cluster.close_kept()
    finally:
        await delete_redis_prefix(redis_url, prefix)


class OwnRedis:
    """A redis-server child process of this test only (never the shared one), on a free port,
    with an append-only file so a stop and restart loses nothing."""

    def __init__(self, directory: Path) -> None:
        from tests.helpers.server_process import free_port

        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import socket
        import time

        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.01)  # polling a child's port with a bound
        raise AssertionError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None


@contextmanager
def own_redis(directory: Path) -> Iterator[OwnRedis]:
    server = OwnRedis(directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()
