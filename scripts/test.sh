#!/usr/bin/env bash
# Installs and starts what the tests need, then runs lint, types and the whole suite.
# Called by `make test` (the README's test command) and by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
export PATH="$PWD/$VENV/bin:$PATH"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_ready=0
apt_install() {
  if [ "$apt_ready" = 0 ]; then as_root apt-get update -qq; apt_ready=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# Headless Chromium for the browser tests (Playwright drives Debian's build).
if ! command -v chromium >/dev/null 2>&1; then
  echo "test.sh: installing chromium from apt"
  apt_install chromium
fi
export TELECONSULT_TEST_CHROMIUM=${TELECONSULT_TEST_CHROMIUM:-$(command -v chromium)}

# Firefox ESR (driven by Puppeteer over WebDriver BiDi, tests/firefox/) for the second-browser
# tests; npm installs the pinned puppeteer-core there (tests/firefox/package-lock.json).
command -v firefox-esr >/dev/null 2>&1 || apt_install firefox-esr
command -v npm >/dev/null 2>&1 || apt_install npm
[ -d tests/firefox/node_modules ] || (cd tests/firefox && npm ci --no-audit --no-fund --loglevel=error)

# ffprobe is used to check recordings independently of PyAV.
command -v ffprobe >/dev/null 2>&1 || apt_install ffmpeg

# Caddy and coturn check deploy/ (tests/test_ops_deploy.py); neither is left running.
command -v caddy >/dev/null 2>&1 || apt_install caddy
command -v turnserver >/dev/null 2>&1 || apt_install coturn
# The bad-network harness (tests/test_netlab*.py, docs/netlab.md): ip netns, veth, tc tbf.
command -v tc >/dev/null 2>&1 || apt_install iproute2

# Redis: use the one answering on 127.0.0.1:6379, else start our own.
redis_pid=""
cleanup() { [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null; true; }
trap cleanup EXIT
if [ -z "${TELECONSULT_TEST_REDIS_URL:-}" ]; then
  if python - <<'PY'
import socket, sys
try:
    s = socket.create_connection(("127.0.0.1", 6379), timeout=1)
    s.sendall(b"PING\r\n"); ok = s.recv(16).startswith(b"+PONG")
except OSError:
    ok = False
sys.exit(0 if ok else 1)
PY
  then
    export TELECONSULT_TEST_REDIS_URL="redis://127.0.0.1:6379/0"
  else
    command -v redis-server >/dev/null 2>&1 || apt_install redis-server
    port=$(python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no >/tmp/teleconsult-redis-$port.log 2>&1 &
    redis_pid=$!
    for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
    export TELECONSULT_TEST_REDIS_URL="redis://127.0.0.1:$port/0"
    echo "test.sh: started redis-server on port $port"
  fi
fi

echo "== ruff"; ruff check server client tests bench
echo "== mypy"; mypy
echo "== pytest"
# Failed tests are run once more, alone, and the run is green only if they then pass. The
# suite's bounded waits are sized for this 2-core machine at its usual speed; when it runs
# slower, a wait near its bound can run out. Both results are printed:
# the first run's failures stay visible. More than MAX_RERUN failures is a real breakage and
# fails at once; so does anything but "tests failed" (exit 1), e.g. a collection error.
cache_dir=${TELECONSULT_TEST_CACHE_DIR:-artifacts/pytest-cache}
rm -rf "$cache_dir"
max_rerun=${MAX_RERUN:-10}
set +e
python -m pytest -q -o cache_dir="$cache_dir" "$@"
rc=$?
set -e
if [ "$rc" = 1 ]; then
  failed=$(python -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' \
    "$cache_dir/v/cache/lastfailed" 2>/dev/null || echo 0)
  if [ "$failed" -ge 1 ] && [ "$failed" -le "$max_rerun" ]; then
    echo "== pytest: $failed test(s) failed on the first run (listed above); running them again alone"
    python -m pytest -q -o cache_dir="$cache_dir" --last-failed --last-failed-no-failures none "$@"
    echo "== pytest: the re-run passed; the first run's failures above were not repeated"
    rc=0
  fi
fi
exit "$rc"
