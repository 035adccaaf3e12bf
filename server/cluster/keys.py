"""Redis key and channel names of the cluster, under the store's prefix:

    {p}cluster:alive:{node}      "active" | "draining", PX node_ttl (the heartbeat)
    {p}cluster:info:{node}       JSON {"node", "host", "port", "pid", "started_at"}, PX node_ttl
    {p}cluster:load              sorted set node -> consultations owned
    {p}cluster:lease:{cid}       "{node}:{epoch}", PX lease_ttl
    {p}cluster:epoch:{cid}       INCR: the lease's fencing token
    {p}cluster:fingerprint       the key material's fingerprint, PX (refreshed by live nodes)
    {p}cluster:to:{node}         pub/sub channel: messages for that node
    {p}cluster:revocations       pub/sub channel: ended staff sessions (id hashes)
    {p}cluster:dashboards        pub/sub channel: doctors' dashboard feed (statuses, snapshot asks,
                                 watch / watch-all announcements)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ClusterKeys:
    prefix: str

    @property
    def base(self) -> str:
        return f"{self.prefix}cluster:"

    @property
    def alive_prefix(self) -> str:
        return f"{self.base}alive:"

    def alive(self, node: str) -> str:
        return f"{self.alive_prefix}{node}"

    def info(self, node: str) -> str:
        return f"{self.base}info:{node}"

    @property
    def info_glob(self) -> str:
        return f"{self.base}info:*"

    @property
    def load(self) -> str:
        return f"{self.base}load"

    def lease(self, cid: str) -> str:
        return f"{self.base}lease:{cid}"

    @property
    def lease_glob(self) -> str:
        return f"{self.base}lease:*"

    def epoch(self, cid: str) -> str:
        return f"{self.base}epoch:{cid}"

    @property
    def fingerprint(self) -> str:
        return f"{self.base}fingerprint"

    def channel(self, node: str) -> str:
        return f"{self.base}to:{node}"

    @property
    def revocations(self) -> str:
        return f"{self.base}revocations"

    @property
    def dashboards(self) -> str:
        return f"{self.base}dashboards"
