"""`teleconsult user add|list|disable|enable|reset-mfa`: staff accounts from the terminal.

Links are printed to stdout for the operator to pass on; they are never logged.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TextIO

from .audit import AuditLog
from .auth.services import AuthServices
from .cli_args import CommandGroup, account_ref, email_address
from .cli_context import Command, store_command
from .clock import SystemClock
from .config import Settings
from .store.base import Store

CLI_ACTOR = "cli"


def _auth(settings: Settings, store: Store) -> AuthServices:
    clock = SystemClock()
    return AuthServices.build(store, clock, settings, AuditLog(store, clock))


_auth_command = store_command(_auth)


async def _resolve(auth: AuthServices, who: str) -> str:
    """An account id, or the e-mail of one."""
    account = await auth.accounts.find_by_email(who) if "@" in who else await auth.accounts.get(who)
    if account is None:
        from .errors import NotFound

        raise NotFound("No such account.")
    return account.id


def _out() -> TextIO:
    return sys.stdout


def _link(settings: Settings, auth: AuthServices, token: str) -> str:
    """The full link from the configured public URL; without one the CLI cannot know where the
    server answers (another port, a proxy): the path only, and a plain word on stderr."""
    if settings.public_url:
        return auth.enrolment.link_url(token)
    print("teleconsult: the public URL is not configured (TELECONSULT_PUBLIC_URL or public_url in"
          " the config file), so this command cannot know the server's address: put that address (for"
          " example https://clinic.example.org) in front of the path printed below.", file=sys.stderr)
    return f"/enrol#{token}"


@_auth_command
async def _add(settings: Settings, args: argparse.Namespace, auth: AuthServices) -> int:
    name = args.name or args.email.split("@", 1)[0]
    account, token = await auth.add_user(email=args.email, role=args.role, display_name=name,
                                         actor=CLI_ACTOR)
    hours = settings.enrol_token_ttl_s // 3600
    print(f"created {account.id} ({account.role}); enrolment link, valid {hours} h, once: "
          f"{_link(settings, auth, token)}", file=_out())
    return 0


@_auth_command
async def _list(settings: Settings, args: argparse.Namespace, auth: AuthServices) -> int:
    for a in await auth.accounts.list():
        state = "disabled" if a.disabled else "locked" if a.locked else \
            "active" if a.active else "pending-enrolment"
        print(f"{a.id}\t{a.role}\t{state}\t{a.email}\t{a.display_name}", file=_out())
    return 0


def _on_account(act: Callable[[Settings, AuthServices, str], Awaitable[str]]) -> Command:
    """A `user <verb> ACCOUNT` command: `act` does it to the account (id or e-mail, resolved to
    its id) and returns the line to print."""

    async def run(settings: Settings, args: argparse.Namespace, auth: AuthServices) -> int:
        account_id = await _resolve(auth, args.account)
        print(await act(settings, auth, account_id), file=_out())
        return 0

    return _auth_command(run)


@_on_account
async def _disable(settings: Settings, auth: AuthServices, account_id: str) -> str:
    ended = await auth.disable(account_id, actor=CLI_ACTOR)
    return f"disabled {account_id}; {ended} session(s) ended"


@_on_account
async def _enable(settings: Settings, auth: AuthServices, account_id: str) -> str:
    await auth.enable(account_id, actor=CLI_ACTOR)
    return f"enabled {account_id} (and unlocked)"


@_on_account
async def _reset_mfa(settings: Settings, auth: AuthServices, account_id: str) -> str:
    token = await auth.reset_mfa(account_id, actor=CLI_ACTOR)
    hours = settings.enrol_token_ttl_s // 3600
    return (f"reset MFA of {account_id}; sessions ended; re-enrolment link, valid {hours} h, once: "
            f"{_link(settings, auth, token)}")


def register_user_commands(sub: Any, commands: dict[str, Command]) -> None:
    user = CommandGroup(sub, commands, "user", "staff accounts")
    add = user.add("add", "create an account and print its enrolment link", _add)
    add.add_argument("--email", required=True, type=email_address)
    add.add_argument("--role", required=True, choices=("doctor", "admin"))
    add.add_argument("--name", default=None, help="display name (default: the e-mail's local part)")
    user.add("list", "list accounts", _list)
    for name, help_text, run in (("disable", "disable and end every session", _disable),
                                 ("enable", "enable, and unlock after too many failed logins", _enable),
                                 ("reset-mfa", "forget TOTP, passkeys, recovery codes; print a re-enrol link",
                                  _reset_mfa)):
        p = user.add(name, help_text, run)
        p.add_argument("account", type=account_ref, help="account id or e-mail")
