"""`teleconsult` command line: serve, and the administrator's commands.

Each group of commands lives in its feature's cli_* module and registers itself here.
Exit codes: 0 success, 1 failure of the command, 2 invalid configuration or usage.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from .clock import SystemClock
from .config import Settings, load_settings
from .errors import ConfigError
from .logs import configure_logging

log = logging.getLogger("teleconsult")

Command = Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, int]]


def _settings(args: argparse.Namespace, **overrides: Any) -> Settings:
    return load_settings(config_file=args.config, overrides=overrides)


async def _serve(settings: Settings, args: argparse.Namespace) -> int:
    from aiohttp import web

    from .api.app import create_app
    from .audit import AuditLog
    from .store.factory import open_store
    from .tls import server_ssl_context

    ssl_context = server_ssl_context(settings)
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    settings.recordings_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    store = await open_store(settings)
    try:
        clock = SystemClock()
        await AuditLog(store, clock).record("system.start", actor=None)
        app = create_app(settings, store=store, clock=clock)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, settings.host, settings.port, ssl_context=ssl_context)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise ConfigError(
                f"cannot listen on {settings.host}:{settings.port}: {exc.strerror}"
            ) from None
        log.info("teleconsult listening on %s", settings.base_url)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("shutting down")
        await runner.cleanup()
    finally:
        await store.close()
    return 0


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, Command]]:
    parser = argparse.ArgumentParser(prog="teleconsult", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=None, help="TOML settings file")
    sub = parser.add_subparsers(dest="command", required=True)
    commands: dict[str, Command] = {}

    serve = sub.add_parser("serve", help="run the server")
    serve.add_argument("--host")
    serve.add_argument("--port")
    serve.add_argument("--tls-cert", dest="tls_cert")
    serve.add_argument("--tls-key", dest="tls_key")
    serve.add_argument("--tls-self-signed", dest="tls_self_signed", action="store_true", default=None)
    commands["serve"] = _serve

    from .cli_admin import register_admin_commands

    register_admin_commands(sub, commands)
    return parser, commands


def main(argv: list[str] | None = None) -> int:
    parser, commands = build_parser()
    args = parser.parse_args(argv)
    overrides = {
        key: getattr(args, key, None)
        for key in ("host", "port", "tls_cert", "tls_key", "tls_self_signed")
    }
    try:
        settings = _settings(args, **overrides)
        configure_logging(settings.log_level)
        command = commands[getattr(args, "command_key", None) or args.command]
        return asyncio.run(command(settings, args))
    except ConfigError as exc:
        print(f"teleconsult: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
