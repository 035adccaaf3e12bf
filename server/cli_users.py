"""`teleconsult user add|list|disable|enable|reset-mfa`: staff accounts from the terminal.

Links are printed to stdout for the operator to pass on; they are never logged.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TextIO

from .audit import AuditLog
from .auth.services import AuthServices
from .clock import SystemClock
from .config import Settings
from .errors import DomainError

Command = Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, int]]
CLI_ACTOR = "cli"


async def _with_auth(settings: Settings, act: Callable[[AuthServices], Awaitable[int]]) -> int:
    from .store.factory import open_store

    store = await open_store(settings)
    try:
        clock = SystemClock()
        return await act(AuthServices.build(store, clock, settings, AuditLog(store, clock)))
    except DomainError as exc:
        print(f"teleconsult: {exc.message}", file=sys.stderr)
        return 1
    finally:
        await store.close()


async def _resolve(auth: AuthServices, who: str) -> str:
    """An account id, or the e-mail of one."""
    account = await auth.accounts.find_by_email(who) if "@" in who else await auth.accounts.get(who)
    if account is None:
        from .errors import NotFound

        raise NotFound("No such account.")
    return account.id


def _out() -> TextIO:
    return sys.stdout


async def _add(settings: Settings, args: argparse.Namespace) -> int:
    async def act(auth: AuthServices) -> int:
        name = args.name or args.email.split("@", 1)[0]
        account, token = await auth.add_user(email=args.email, role=args.role, display_name=name,
                                             actor=CLI_ACTOR)
        hours = settings.enrol_token_ttl_s // 3600
        print(f"created {account.id} ({account.role}); enrolment link, valid {hours} h, once: "
              f"{auth.enrolment.link_url(token)}", file=_out())
        return 0

    return await _with_auth(settings, act)


async def _list(settings: Settings, args: argparse.Namespace) -> int:
    async def act(auth: AuthServices) -> int:
        for a in await auth.accounts.list():
            state = "disabled" if a.disabled else "locked" if a.locked else \
                "active" if a.active else "pending-enrolment"
            print(f"{a.id}\t{a.role}\t{state}\t{a.email}\t{a.display_name}", file=_out())
        return 0

    return await _with_auth(settings, act)


async def _disable(settings: Settings, args: argparse.Namespace) -> int:
    async def act(auth: AuthServices) -> int:
        account_id = await _resolve(auth, args.account)
        ended = await auth.disable(account_id, actor=CLI_ACTOR)
        print(f"disabled {account_id}; {ended} session(s) ended", file=_out())
        return 0

    return await _with_auth(settings, act)


async def _enable(settings: Settings, args: argparse.Namespace) -> int:
    async def act(auth: AuthServices) -> int:
        account_id = await _resolve(auth, args.account)
        await auth.enable(account_id, actor=CLI_ACTOR)
        print(f"enabled {account_id} (and unlocked)", file=_out())
        return 0

    return await _with_auth(settings, act)


async def _reset_mfa(settings: Settings, args: argparse.Namespace) -> int:
    async def act(auth: AuthServices) -> int:
        account_id = await _resolve(auth, args.account)
        token = await auth.reset_mfa(account_id, actor=CLI_ACTOR)
        hours = settings.enrol_token_ttl_s // 3600
        print(f"reset MFA of {account_id}; sessions ended; re-enrolment link, valid {hours} h, once: "
              f"{auth.enrolment.link_url(token)}", file=_out())
        return 0

    return await _with_auth(settings, act)


def register_user_commands(sub: Any, commands: dict[str, Command]) -> None:
    user = sub.add_parser("user", help="staff accounts")
    user_sub = user.add_subparsers(dest="user_command", required=True)
    add = user_sub.add_parser("add", help="create an account and print its enrolment link")
    add.add_argument("--email", required=True)
    add.add_argument("--role", required=True, choices=("doctor", "admin"))
    add.add_argument("--name", default=None, help="display name (default: the e-mail's local part)")
    add.set_defaults(command_key="user add")
    user_sub.add_parser("list", help="list accounts").set_defaults(command_key="user list")
    for name, help_text in (("disable", "disable and end every session"),
                            ("enable", "enable, and unlock after too many failed logins"),
                            ("reset-mfa", "forget TOTP and recovery codes; print a re-enrolment link")):
        p = user_sub.add_parser(name, help=help_text)
        p.add_argument("account", help="account id or e-mail")
        p.set_defaults(command_key=f"user {name}")
    commands.update({"user add": _add, "user list": _list, "user disable": _disable,
                     "user enable": _enable, "user reset-mfa": _reset_mfa})
