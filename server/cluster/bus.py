"""One pub/sub channel per node (`{p}cluster:to:{node}`) plus the shared revocation channel.

Messages are JSON objects; the bus does not look inside them beyond dispatching by channel.
Redis keeps each publisher connection's order, and the one reader task below hands messages to
the handler in that order, so a relayed socket's frames arrive in the order they were sent.
When the subscription breaks (Redis restarting), `on_link_lost` is called once per outage and
the reader retries until it is back; `on_subscribed` is called each time the subscription
(first or again) is in place.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, cast

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..errors import Unavailable
from ..tasks import cancel_and_wait

log = logging.getLogger("teleconsult.cluster")

Handler = Callable[[dict[str, Any]], Awaitable[None]]
RETRY_S = 0.5  # between attempts to re-subscribe while Redis is away
BUS_TASK = "cluster-bus"
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, OSError)


class ClusterBus:
    def __init__(self, client: aioredis.Redis, channels: dict[str, Handler],
                 on_link_lost: Callable[[], Awaitable[None]] | None = None,
                 on_subscribed: Callable[[], None] | None = None) -> None:
        self._client = client
        self._channels = channels
        self._on_link_lost = on_link_lost
        self._on_subscribed = on_subscribed
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self.published = 0  # messages this node published (benchmarks)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=BUS_TASK)
        ready = asyncio.ensure_future(self._ready.wait())
        await asyncio.wait({ready, self._task}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        if not self._ready.is_set():
            raise Unavailable("cannot subscribe to the cluster's channels")

    async def publish(self, channel: str, message: dict[str, Any]) -> int:
        """How many subscribers got it (0: nobody listens on `channel` right now, e.g. its node
        is re-subscribing after an outage). Raises Unavailable when Redis does not answer."""
        try:
            receivers = await self._client.publish(channel, json.dumps(message, separators=(",", ":")))
        except REDIS_DOWN as exc:
            raise Unavailable("the cluster's Redis does not answer") from exc
        self.published += 1
        return int(receivers)

    async def _run(self) -> None:
        lost = False
        while True:
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(*self._channels)
                if lost:
                    log.info("cluster bus: subscribed again")
                lost = False
                if self._on_subscribed is not None:
                    self._on_subscribed()
                self._ready.set()
                while True:
                    message = await pubsub.get_message(timeout=5.0)
                    if message is not None:
                        await self._dispatch(message)
            except asyncio.CancelledError:
                raise
            except REDIS_DOWN:
                if not lost:
                    lost = True
                    log.warning("cluster bus: Redis subscription lost; retrying")
                    if self._on_link_lost is not None:
                        await self._on_link_lost()
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            await asyncio.sleep(RETRY_S)  # retry delay while Redis is away

    async def _dispatch(self, message: dict[str, Any]) -> None:
        channel = cast(str, message.get("channel"))
        handler = self._channels.get(channel)
        try:
            payload = json.loads(message["data"])
            if handler is not None and isinstance(payload, dict):
                await handler(payload)
        except Exception:
            log.exception("cluster bus: a message handler failed")

    async def close(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
