"""`teleconsult integrations create|list|revoke|rotate-secret|webhook-set` (docs/integrations.md).

The API key (create) and the webhook signing secret (first webhook-set, rotate-secret) are
printed once, on stdout, and never again: the store holds the key's sha256 and the secret
sealed. Every command is audited with actor "cli" and the integration's id.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

from .audit import AuditLog
from .auth.secretbox import SecretBox
from .cli_args import CommandGroup, object_id
from .cli_context import Command, store_command
from .clock import SystemClock
from .config import Settings
from .integrations.models import Scope
from .integrations.outbox import Outbox, OutboxEventSink
from .integrations.registry import IntegrationRegistry
from .store.base import Store

CLI_ACTOR = "cli"
DAY_S = 86400


def _out() -> TextIO:
    return sys.stdout


def build_registry(store: Store, settings: Settings, audit: AuditLog) -> IntegrationRegistry:
    return IntegrationRegistry(store, SystemClock(), settings, audit,
                               SecretBox.load_or_create(settings.data_dir))


def cli_event_sink(store: Store, settings: Settings, audit: AuditLog) -> OutboxEventSink:
    """Events of CLI acts (recordings delete) go to the outbox; the server's worker sends them
    (it looks at the outbox every Settings.webhook_poll_s)."""
    clock = SystemClock()
    return OutboxEventSink(store, clock, audit, build_registry(store, settings, audit),
                           Outbox(store, clock, settings))


_integration_command = store_command(
    lambda settings, store: build_registry(store, settings, AuditLog(store, SystemClock())))


@_integration_command
async def _create(settings: Settings, args: argparse.Namespace, registry: IntegrationRegistry) -> int:
    expires = None if args.expires_in_days is None else args.expires_in_days * DAY_S
    issued = await registry.create(name=args.name, scopes=args.scope, expires_in_s=expires,
                                   rate_limit_per_min=args.rate_limit, actor=CLI_ACTOR)
    i = issued.integration
    print(f"integration {i.id} created; scopes {', '.join(sorted(s.value for s in i.scopes))}",
          file=_out())
    print(f"API key (shown once, store it in the integration now): {issued.api_key}", file=_out())
    return 0


@_integration_command
async def _list(settings: Settings, args: argparse.Namespace, registry: IntegrationRegistry) -> int:
    now = SystemClock().now()
    for i in await registry.list_all():
        row = i.public(now)
        if args.json:
            print(json.dumps(row, sort_keys=True), file=_out())
        else:
            hook = row["webhook"]
            print(f"{i.id}\t{row['status']}\t{','.join(row['scopes'])}\t"
                  f"{hook['url'] if hook else '-'}\t{row['name']}", file=_out())
    return 0


@_integration_command
async def _revoke(settings: Settings, args: argparse.Namespace, registry: IntegrationRegistry) -> int:
    await registry.revoke(args.integration_id, actor=CLI_ACTOR)
    print(f"revoked {args.integration_id}: its key is refused from now on, no webhook is sent",
          file=_out())
    return 0


@_integration_command
async def _webhook_set(settings: Settings, args: argparse.Namespace, registry: IntegrationRegistry) -> int:
    issued = await registry.set_webhook(args.integration_id, url=args.url, events=args.event,
                                        actor=CLI_ACTOR)
    print(f"webhook of {args.integration_id} set; events {', '.join(sorted(args.event))}",
          file=_out())
    if issued is not None:
        print(f"signing secret (shown once): {issued.secret}", file=_out())
    return 0


@_integration_command
async def _rotate_secret(settings: Settings, args: argparse.Namespace, registry: IntegrationRegistry) -> int:
    issued = await registry.rotate_secret(args.integration_id, overlap_s=args.overlap_s,
                                          actor=CLI_ACTOR)
    print(f"new signing secret (shown once): {issued.secret}", file=_out())
    if issued.previous_valid_until is not None:
        print(f"the previous secret also signs until {issued.previous_valid_until:.0f} "
              "(unix time)", file=_out())
    return 0


def register_integration_commands(sub: Any, commands: dict[str, Command]) -> None:
    grp = CommandGroup(sub, commands, "integrations", "API keys and webhooks for booking/record systems")
    create = grp.add("create", "a new integration and its API key (shown once)", _create)
    create.add_argument("--name", required=True, help="a label for the administrator")
    create.add_argument("--scope", action="append", required=True,
                        choices=sorted(s.value for s in Scope), help="repeat for several")
    create.add_argument("--expires-in-days", dest="expires_in_days", type=float, default=None)
    create.add_argument("--rate-limit", dest="rate_limit", type=int, default=None,
                        help="calls a minute (default TELECONSULT_INTEGRATION_RATE_LIMIT_PER_MIN)")
    lst = grp.add("list", "list integrations (never their keys or secrets)", _list)
    lst.add_argument("--json", action="store_true")
    rev = grp.add("revoke", "refuse the key at once, stop its webhooks", _revoke)
    rev.add_argument("integration_id", type=object_id("integration"))
    hook = grp.add("webhook-set", "the HTTPS endpoint and the events it gets", _webhook_set)
    hook.add_argument("integration_id", type=object_id("integration"))
    hook.add_argument("--url", required=True)
    hook.add_argument("--event", action="append", required=True, help="repeat for several")
    rot = grp.add("rotate-secret", "a new signing secret; the old one overlaps", _rotate_secret)
    rot.add_argument("integration_id", type=object_id("integration"))
    rot.add_argument("--overlap-s", dest="overlap_s", type=float, default=None,
                     help="how long the old secret keeps signing (default"
                          " TELECONSULT_WEBHOOK_SECRET_OVERLAP_S)")
