"""Choose and open the store from Settings: Redis when a URL is set, else SQLite (DESIGN D4)."""

from __future__ import annotations

from ..config import Settings
from ..errors import ConfigError, Unavailable
from .base import Store
from .redis import RedisStore, describe_redis_url
from .sqlite import SQLiteStore


async def open_store(settings: Settings) -> Store:
    """Open the configured store. Raises ConfigError (one line, no password) when Redis is
    configured but does not answer."""
    if settings.redis_url:
        url = settings.redis_url.get()
        try:
            return await RedisStore.open(url, settings.redis_prefix)
        except Unavailable:
            raise ConfigError(
                f"TELECONSULT_REDIS_URL: cannot connect to Redis at {describe_redis_url(url)}"
            ) from None
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    return await SQLiteStore.open(settings.sqlite_path)
