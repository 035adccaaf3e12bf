"""Choose and open the store from Settings: Redis when a URL is set, else SQLite (DESIGN D4)."""

from __future__ import annotations

import sqlite3

from ..config import Settings
from ..errors import ConfigError, Unavailable
from .base import Store
from .redis import RedisStore, describe_redis_url
from .sqlite import SQLiteStore
from .timed import TimedStore


async def open_store(settings: Settings) -> Store:
    """Open the configured store. Raises ConfigError (one line, no password) when Redis is
    configured but does not answer, or when the SQLite database cannot be opened. The store is
    wrapped in a TimedStore (latency metrics)."""
    if settings.redis_url:
        url = settings.redis_url.get()
        try:
            return TimedStore(await RedisStore.open(url, settings.redis_prefix))
        except Unavailable:
            raise ConfigError(
                f"TELECONSULT_REDIS_URL: cannot connect to Redis at {describe_redis_url(url)}"
            ) from None
    path = settings.sqlite_path
    try:
        settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        return TimedStore(await SQLiteStore.open(path))
    except (OSError, sqlite3.Error) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"TELECONSULT_DATA_DIR: cannot open the database {path}: {reason}") from None
