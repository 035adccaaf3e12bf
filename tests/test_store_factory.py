"""server/store/factory.py and RedisStore failure modes: which store, and clear errors."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import stat
from urllib.parse import urlsplit

import pytest

from server.config import Secret, Settings
from server.errors import ConfigError, Unavailable
from server.store.factory import open_store
from server.store.redis import RedisStore
from server.store.sqlite import SQLiteStore
from server.store.timed import TimedStore
from tests.conftest import delete_redis_prefix, random_redis_prefix


def closed_port() -> int:
    """A local port nobody listens on (bound then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_without_redis_url_it_opens_sqlite_in_the_data_dir(settings: Settings) -> None:
    store = await open_store(settings)
    try:
        assert isinstance(store, TimedStore) and isinstance(store.inner, SQLiteStore)  # latency metrics
        assert settings.sqlite_path.exists()
        assert stat.S_IMODE(settings.data_dir.stat().st_mode) == 0o700
    finally:
        await store.close()


async def test_with_redis_url_it_opens_redis_under_the_prefix(settings: Settings,
                                                              redis_url: str) -> None:
    prefix = random_redis_prefix()
    s = dataclasses.replace(settings, redis_url=Secret(redis_url), redis_prefix=prefix)
    store = await open_store(s)
    try:
        assert isinstance(store, TimedStore)
        assert isinstance(store.inner, RedisStore) and store.inner.prefix == prefix
        await store.put_doc("account", "a1", {"id": "a1"})
        assert await store.get_doc("account", "a1") == {"id": "a1"}
    finally:
        await store.close()
        await delete_redis_prefix(redis_url, prefix)


async def test_unreachable_redis_is_a_one_line_config_error_without_password(
    settings: Settings,
) -> None:
    port = closed_port()
    url = f"redis://user:s3cret-pw@127.0.0.1:{port}/0"
    s = dataclasses.replace(settings, redis_url=Secret(url))
    with pytest.raises(ConfigError) as caught:
        await open_store(s)
    message = str(caught.value)
    assert message == f"TELECONSULT_REDIS_URL: cannot connect to Redis at 127.0.0.1:{port}"
    assert "s3cret" not in message and "\n" not in message
    assert not settings.data_dir.exists()  # no fallback to SQLite behind the admin's back


async def test_redis_store_open_refuses_a_dead_address_and_an_empty_prefix(redis_url: str) -> None:
    with pytest.raises(Unavailable, match=r"127\.0\.0\.1:\d+"):
        await RedisStore.open(f"redis://127.0.0.1:{closed_port()}/0", "tc-test-x:")
    with pytest.raises(ValueError, match="prefix"):
        await RedisStore.open(redis_url, "")


async def test_redis_store_raises_unavailable_when_redis_goes_away(redis_url: str) -> None:
    """A real TCP relay in front of Redis; cutting it is Redis disappearing mid-use."""
    target = urlsplit(redis_url)
    conns: list[asyncio.StreamWriter] = []

    async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(target.hostname, target.port or 6379)
        conns.extend([writer, up_writer])
        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))

    server = await asyncio.start_server(relay, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    prefix = random_redis_prefix()
    store = await RedisStore.open(f"redis://127.0.0.1:{port}{target.path}", prefix)
    try:
        await store.put_doc("account", "a1", {"id": "a1"})
        server.close()
        for w in conns:
            w.close()
        await server.wait_closed()
        with pytest.raises(Unavailable, match=f"127.0.0.1:{port}"):
            await store.get_doc("account", "a1")
    finally:
        await store.close()
        await delete_redis_prefix(redis_url, prefix)


async def test_an_unusable_data_dir_is_a_one_line_config_error(settings: Settings) -> None:
    settings.data_dir.parent.mkdir(parents=True, exist_ok=True)
    settings.data_dir.write_text("a file where the data directory should be")
    with pytest.raises(ConfigError, match=r"^TELECONSULT_DATA_DIR: cannot open the database"):
        await open_store(settings)
