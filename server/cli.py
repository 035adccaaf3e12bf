"""`teleconsult` command line: serve, and the administrator's commands.

Each group of commands lives in its feature's cli_* module and registers itself here.
Exit codes: 0 success, 1 failure of the command, 2 invalid configuration or usage. Every
failure is one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from .cli_args import CliParser, add_command
from .cli_context import Command
from .clock import SystemClock
from .config import Settings, load_settings
from .errors import ConfigError, DomainError
from .logs import configure_logging
from .tasks import reporting_if_slow

log = logging.getLogger("teleconsult")
# On stop, the open sockets are closed first (api/services.py `_close_sockets`); a request or
# socket handler still running this long after is cancelled (aiohttp's default waits 60 s, more
# than a supervisor's stop timeout: docker's is 10 s).
HANDLERS_STOP_S = 5.0
STOP_REPORT_S = 4.0  # a stop still running after this long logs what it waits on (again each period)


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
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=HANDLERS_STOP_S)
        await runner.setup()
        site = web.TCPSite(runner, settings.host, settings.port, ssl_context=ssl_context,
                           reuse_port=bool(getattr(args, "pool_worker", False)) or None)
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
        if await _wait_stop_or_cluster_drain(app, stop):
            await _drain_cluster(app, settings, stop)
        else:
            await _drain(app, settings)
        log.info("shutting down")
        async with reporting_if_slow(log, "stop", STOP_REPORT_S):
            await runner.cleanup()
        log.info("stopped")
    finally:
        await store.close()
    return 0


async def _drain(app: Any, settings: Settings) -> None:
    """/readyz answers 503 "draining" for drain_grace_s while calls go on, then we stop."""
    from .api.keys import READINESS

    app[READINESS].draining = True
    if settings.drain_grace_s > 0:
        log.info("draining for %.0f s", settings.drain_grace_s)
        await asyncio.sleep(settings.drain_grace_s)  # the grace period itself, not a sync


async def _wait_stop_or_cluster_drain(app: Any, stop: asyncio.Event) -> bool:
    """Until SIGTERM/SIGINT (False) or a `node drain` for this node (True)."""
    from .api.keys import CLUSTER

    node = app.get(CLUSTER)
    waits = {asyncio.ensure_future(stop.wait())}
    if node is not None:
        waits.add(asyncio.ensure_future(node.drain_requested.wait()))
    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for w in waits:
        w.cancel()
    return not stop.is_set()


async def _drain_cluster(app: Any, settings: Settings, stop: asyncio.Event) -> None:
    """`node drain`: no new consultation here (placement skips a draining node, /readyz 503);
    wait until no consultation owned here has a socket left (or drain_timeout_s, or a signal)."""
    from .api.keys import CLUSTER, READINESS

    node = app[CLUSTER]
    app[READINESS].draining = True
    await node.start_drain()
    deadline = asyncio.get_running_loop().time() + settings.drain_timeout_s
    while node.busy() and not stop.is_set() and asyncio.get_running_loop().time() < deadline:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.5):  # re-check the calls twice a second
                await stop.wait()
    log.info("drained: %s", "no call left" if not node.busy() else "stopped with calls running")


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, Command]]:
    parser = CliParser(prog="teleconsult", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=None, help="TOML settings file")
    sub = parser.add_subparsers(dest="command", required=True)
    commands: dict[str, Command] = {}

    serve = add_command(sub, commands, "serve", "run the server", _serve)
    serve.add_argument("--host")
    serve.add_argument("--port")
    serve.add_argument("--tls-cert", dest="tls_cert")
    serve.add_argument("--tls-key", dest="tls_key")
    serve.add_argument("--tls-self-signed", dest="tls_self_signed", action="store_true", default=None)
    serve.add_argument("--workers", type=int, default=None,
                       help="serving processes (default: one per core with Redis, one without)")
    serve.add_argument("--pool-worker", dest="pool_worker", action="store_true", help=argparse.SUPPRESS)

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
        configure_logging(settings.log_level, settings.log_format)
        command = commands[getattr(args, "command_key", None) or args.command]
        if args.command == "serve" and not args.pool_worker:
            from .cli_cluster import run_worker_pool, worker_count

            count = worker_count(settings, args.workers)
            if count > 1:
                asyncio.run(_check_store(settings))  # one clear line before any worker starts
                serve_argv = _serve_argv(argv if argv is not None else sys.argv[1:])
                return run_worker_pool(settings, count, serve_argv)
        return asyncio.run(command(settings, args))
    except ConfigError as exc:
        print(f"teleconsult: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except DomainError as exc:
        print(f"teleconsult: {exc.message}", file=sys.stderr)
        return 1
    except ValueError as exc:  # a value the store or the audit log refused
        print(f"teleconsult: invalid input: {_first_line(exc)}", file=sys.stderr)
        return 1
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        print(f"teleconsult: {exc.strerror or _first_line(exc)}{where}", file=sys.stderr)
        return 1
    except Exception as exc:  # the last line of defence: one line, the type only (no PHI)
        print(f"teleconsult: unexpected error ({type(exc).__name__})", file=sys.stderr)
        return 1


async def _check_store(settings: Settings) -> None:
    from .store.factory import open_store

    await (await open_store(settings)).close()


def _serve_argv(argv: list[str]) -> list[str]:
    """The serve command line without --workers (each worker serves alone)."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--workers":
            skip = True
        elif not arg.startswith("--workers="):
            out.append(arg)
    return out


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:200]


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
