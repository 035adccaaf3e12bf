"""What every store-backed CLI command shares: open the configured store, build the command's
context over it, run the command, answer a domain error as one line on stderr (exit 1), close
the store."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from .config import Settings
from .errors import DomainError
from .store.base import Store

Command = Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, int]]
C = TypeVar("C")


async def run_in_store(settings: Settings, build: Callable[[Store], C],
                       act: Callable[[C], Awaitable[int]]) -> int:
    from .store.factory import open_store

    store = await open_store(settings)
    try:
        return await act(build(store))
    except DomainError as exc:
        print(f"teleconsult: {exc.message}", file=sys.stderr)
        return 1
    finally:
        await store.close()


def store_command(
    build: Callable[[Settings, Store], C],
) -> Callable[[Callable[[Settings, argparse.Namespace, C], Awaitable[int]]], Command]:
    """A decorator: `act(settings, args, context)` becomes a command whose context `build`
    makes from the settings and the opened store."""

    def wrap(act: Callable[[Settings, argparse.Namespace, C], Awaitable[int]]) -> Command:
        async def command(settings: Settings, args: argparse.Namespace) -> int:
            return await run_in_store(settings, lambda store: build(settings, store),
                                      lambda context: act(settings, args, context))

        return command

    return wrap
