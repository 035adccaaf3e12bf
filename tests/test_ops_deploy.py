"""deploy/ and the Dockerfile, checked with what runs here (there is no container engine):

- deploy/compose.yaml against the compose-spec JSON schema (shipped by check-jsonschema), and
  its teleconsult environment, interpolated with deploy/env.example, loads as valid Settings;
  ports and secrets agree between services and with turnserver.conf;
- the Dockerfile's COPY list exists, and the server runs from exactly that file list (the
  image's /app) and serves its pages;
- deploy/Caddyfile passes `caddy validate`;
- deploy/turnserver.conf runs in a real coturn that grants a TURN allocation to teleconsult's
  REST credentials (same shared secret) and refuses one made with another secret.

Not run here: `docker build` and `docker compose up` (no engine), Let's Encrypt issuance (no
public name), and media through the stack's TURN from outside (docs/deployment.md says so).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aioice import stun, turn
from ruamel.yaml import YAML

from server.api.keys import SETTINGS
from server.api.proxy import client_address
from server.config import Secret, Settings, load_settings
from server.sfu.ice import turn_rest_credentials
from tests.helpers.server_process import REPO, free_port
from tests.helpers.waiting import wait_for_condition

DEPLOY = REPO / "deploy"


def _compose() -> dict[str, Any]:
    return YAML(typ="safe").load((DEPLOY / "compose.yaml").read_text())


def _example_env() -> dict[str, str]:
    values: dict[str, str] = {}
    for line in (DEPLOY / "env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:-|:\?)((?:[^{}]|\$\{[^}]*\})*))?\}")


def _interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} (nested), ${VAR:?error} and $$."""
    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name, op, arg = m.group(1), m.group(2), m.group(3) or ""
        value = env.get(name, "")
        if value:
            return value
        if op == ":?":
            raise AssertionError(f"{name} is required: {arg}")
        return _interpolate(arg, env) if op == ":-" else ""
    return _VAR.sub(sub, text)


def test_compose_file_matches_the_compose_spec() -> None:
    schema_file = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = json.loads(schema_file.read_text())
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    errors = sorted(validator_class(schema).iter_errors(_compose()), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)
    # and the schema does catch a mistake (a typo'd key)
    broken = _compose()
    broken["services"]["caddy"]["restrat"] = "always"
    assert list(validator_class(schema).iter_errors(broken))


def test_compose_environment_is_valid_settings_and_services_agree() -> None:
    compose = _compose()
    example = _example_env()
    services = compose["services"]
    assert set(services) == {"teleconsult", "redis", "coturn", "caddy"}
    # every variable the file requires is in env.example
    required = set(re.findall(r"\$\{([A-Z_]+):\?", (DEPLOY / "compose.yaml").read_text()))
    assert required <= set(example), required - set(example)
    env = {k: _interpolate(str(v), example) for k, v in services["teleconsult"]["environment"].items()}
    settings = load_settings(environ=env)
    assert settings.host == "127.0.0.1" and settings.trusted_proxies == ("127.0.0.1",)
    assert settings.base_url == f"https://{example['TELECONSULT_DOMAIN']}"
    assert settings.tls_enabled  # TLS ends at Caddy: cookies still Secure, HSTS still sent
    assert settings.redis_url.get() == f"redis://:{example['REDIS_PASSWORD']}@127.0.0.1:6379/0"
    assert settings.log_format == "json" and settings.metrics_listen.startswith("127.0.0.1:")
    assert not settings.metrics_token  # metrics only on the private listener
    assert all(u.startswith(("turn:", "stun:")) for u in settings.turn_urls + settings.stun_urls)
    # the TURN secret and realm are the same on both sides
    coturn_args = [_interpolate(a, example) for a in services["coturn"]["command"]]
    assert f"--static-auth-secret={settings.turn_secret.get()}" in coturn_args
    assert f"--realm={example['TELECONSULT_DOMAIN']}" in coturn_args
    assert "--external-ip=" + example["PUBLIC_IP"] in coturn_args  # ANNOUNCE_IP empty: the default
    # redis: password, loopback only, persistence on
    redis_args = [_interpolate(str(a), example) for a in services["redis"]["command"]]
    assert redis_args[redis_args.index("--requirepass") + 1] == example["REDIS_PASSWORD"]
    assert redis_args[redis_args.index("--bind") + 1] == "127.0.0.1"
    assert redis_args[redis_args.index("--appendonly") + 1] == "yes"
    # the volumes are the image's volumes; the health check asks /readyz on the server's port
    dockerfile = (REPO / "Dockerfile").read_text()
    image_volumes = set(json.loads(re.search(r"^VOLUME (\[.*\])$", dockerfile, re.M).group(1)))  # type: ignore[union-attr]
    mounted = {v.split(":")[1] for v in services["teleconsult"]["volumes"]}
    assert mounted == image_volumes
    assert f"127.0.0.1:{settings.port}/readyz" in " ".join(services["teleconsult"]["healthcheck"]["test"])
    # the firewall comment names the relay range of turnserver.conf
    conf = (DEPLOY / "turnserver.conf").read_text()
    low, high = (re.search(rf"^{k}=(\d+)$", conf, re.M).group(1) for k in ("min-port", "max-port"))  # type: ignore[union-attr]
    assert f"{low}-{high}/udp" in (DEPLOY / "compose.yaml").read_text()


def _dockerfile_copies() -> list[tuple[list[str], str]]:
    copies = []
    for line in (REPO / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            parts = line.split()[1:]
            copies.append((parts[:-1], parts[-1]))
    return copies


def test_the_server_runs_from_the_image_file_list(tmp_path: Path) -> None:
    """Lay out /app exactly as the Dockerfile's COPY lines do, and run the server from it."""
    app = tmp_path / "app"
    app.mkdir()
    copies = _dockerfile_copies()
    assert copies, "no COPY in the Dockerfile"
    for sources, dest in copies:
        for src in sources:
            path = REPO / src
            assert path.exists(), f"Dockerfile copies {src}, which is not in the repository"
            target = app / dest / (path.name if dest.endswith("/") else "")
            if path.is_dir():
                shutil.copytree(path, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(path, target)
    assert (app / "server" / "__main__.py").is_file() and (app / "web").is_dir()
    # the test and benchmark client (client/) is not the server: never in the image
    assert not any((app / name).exists() for name in ("tests", "bench", "client"))
    assert not any(p.name == "client" for p in app.rglob("*") if p.is_dir())
    # the image's ENV, with writable temporary volumes
    dockerfile = (REPO / "Dockerfile").read_text()
    env_block = re.search(r"^ENV ((?:.*\\\n)*.*)$", dockerfile, re.M).group(1)  # type: ignore[union-attr]
    image_env = dict(re.findall(r"(TELECONSULT_[A-Z_]+)=(\S+)", env_block))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELECONSULT_", "PYTHONPATH"))}
    env.update(image_env)
    env.update(TELECONSULT_HOST="127.0.0.1", TELECONSULT_PORT=str(port),
               TELECONSULT_DATA_DIR=str(tmp_path / "data"),
               TELECONSULT_RECORDINGS_DIR=str(tmp_path / "recordings"),
               TELECONSULT_ICE_HOST_ADDRESSES="127.0.0.1")
    where = subprocess.run([sys.executable, "-c", "import server; print(server.__file__)"], cwd=app, env=env,
                           capture_output=True, text=True, timeout=60, check=True)
    assert where.stdout.strip() == str(app / "server" / "__init__.py")
    log = open(tmp_path / "image-server.log", "w")  # noqa: SIM115 - closed in finally
    process = subprocess.Popen([sys.executable, "-m", "server", "serve"], cwd=app, env=env,
                               stdout=log, stderr=subprocess.STDOUT)
    try:
        async def pages() -> None:
            async with aiohttp.ClientSession() as session:
                async def up() -> bool:
                    if process.poll() is not None:
                        raise AssertionError((tmp_path / "image-server.log").read_text())
                    try:
                        async with session.get(f"http://127.0.0.1:{port}/readyz") as r:
                            return r.status == 200
                    except aiohttp.ClientError:
                        return False
                await wait_for_condition(up, timeout_s=30, interval_s=0.1, what="the image's server ready")
                for path in ("/", "/join", "/healthz"):
                    async with session.get(f"http://127.0.0.1:{port}{path}") as r:
                        assert r.status == 200, (path, r.status)
        asyncio.run(pages())
    finally:
        process.terminate()
        process.wait(timeout=15)
        log.close()


@pytest.mark.skipif(shutil.which("caddy") is None, reason="caddy not installed (scripts/test.sh installs it)")
def test_caddyfile_validates(tmp_path: Path) -> None:
    env = {**os.environ, "TELECONSULT_DOMAIN": "visio.clinic.example", "ACME_EMAIL": "it@clinic.example",
           "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "data"), "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    done = subprocess.run(["caddy", "validate", "--config", str(DEPLOY / "Caddyfile"), "--adapter", "caddyfile"],
                          env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    adapted = subprocess.run(["caddy", "adapt", "--config", str(DEPLOY / "Caddyfile"), "--adapter", "caddyfile"],
                             env=env, capture_output=True, text=True, timeout=60, check=True)
    config = json.dumps(json.loads(adapted.stdout))
    assert '"upstreams": [{"dial": "127.0.0.1:8080"}]' in config
    assert "visio.clinic.example" in config and '"/metrics"' in config


async def test_turnserver_conf_grants_allocations_to_teleconsult_credentials(tmp_path: Path) -> None:
    if shutil.which("turnserver") is None:
        pytest.skip("coturn not installed (scripts/test.sh installs it)")
    secret = "a-shared-secret-for-this-test-only"
    port = free_port()
    process = subprocess.Popen(
        ["turnserver", "-c", str(DEPLOY / "turnserver.conf"), "--listening-ip=127.0.0.1",
         "--relay-ip=127.0.0.1", f"--listening-port={port}", "--realm=visio.clinic.example",
         f"--static-auth-secret={secret}", "--no-tls", "--no-dtls", f"--pidfile={tmp_path / 'turn.pid'}"],
        stdout=open(tmp_path / "turn.log", "w"), stderr=subprocess.STDOUT)  # noqa: SIM115
    try:
        good = turn_rest_credentials(Secret(secret), user_id="p_test", now=time.time(), ttl_s=600)
        bad = turn_rest_credentials(Secret("another secret entirely"), user_id="p_test", now=time.time(), ttl_s=600)

        async def allocate(username: str, password: str) -> tuple[str, int]:
            transport, _ = await asyncio.wait_for(turn.create_turn_endpoint(
                asyncio.DatagramProtocol, ("127.0.0.1", port), username, password), 10)
            try:
                return transport.get_extra_info("sockname")  # type: ignore[no-any-return]
            finally:
                transport.close()

        async def listening() -> bool:
            if process.poll() is not None:
                raise AssertionError((tmp_path / "turn.log").read_text()[-3000:])
            return f"127.0.0.1:{port}" in (tmp_path / "turn.log").read_text() or \
                "Total General servers" in (tmp_path / "turn.log").read_text()
        await wait_for_condition(listening, timeout_s=20, interval_s=0.1, what="coturn listening")
        relayed = None
        deadline = time.monotonic() + 20
        while relayed is None:
            try:
                relayed = await allocate(good.username, good.credential)
            except (ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)  # a retry interval while coturn finishes starting
        host, relay_port = relayed
        assert host == "127.0.0.1" and 49160 <= relay_port <= 49200, relayed
        with pytest.raises(stun.TransactionFailed, match="401"):
            await allocate(bad.username, bad.credential)
        log = (tmp_path / "turn.log").read_text()
        assert "CONFIG ERROR" not in log.upper() and "Bad configuration" not in log, log[-3000:]
    finally:
        process.terminate()
        process.wait(timeout=15)


async def test_client_address_believes_only_trusted_proxies(tmp_path: Path) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(text=client_address(request))

    for trusted, expected in (((), "127.0.0.1"), (("127.0.0.1",), "198.51.100.7"), (("10.0.0.0/8",), "127.0.0.1")):
        app = web.Application()
        app[SETTINGS] = Settings(trusted_proxies=trusted)
        app.router.add_get("/", handler)
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            # the client forged the leftmost entry; our proxy appended the address it saw
            response = await client.get("/", headers={"X-Forwarded-For": "203.0.113.66, 198.51.100.7"})
            assert await response.text() == expected, trusted


async def test_behind_the_tls_proxy_cookies_are_secure_and_hsts_is_sent(tmp_path: Path) -> None:
    from server.api.app import create_app

    settings = Settings(data_dir=tmp_path / "data", recordings_dir=tmp_path / "recordings",
                        public_url="https://visio.clinic.example", trusted_proxies=("127.0.0.1",))
    async with TestClient(TestServer(create_app(settings), host="127.0.0.1")) as client:
        response = await client.get("/api/csrf")
        assert response.status == 200
        assert "Secure" in response.headers["Set-Cookie"]
        assert response.headers["Strict-Transport-Security"].startswith("max-age=")


def test_grafana_dashboard_asks_only_for_metrics_the_server_exports() -> None:
    from server import metrics

    dashboard = json.loads((REPO / "docs" / "grafana-dashboard.json").read_text())
    exported = {m.name for m in metrics.REGISTRY.collect()}
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert exprs
    for expr in exprs:
        for name in re.findall(r"\b(teleconsult_[a-z_]+|process_[a-z_]+)", expr):
            base = re.sub(r"_(total|bucket|count|sum)$", "", name)
            assert base in exported or name in exported, f"{name} in {expr!r} is not exported"
