#!/usr/bin/env bash
# Set up (if needed), lint, type-check and run the whole test suite on every core
# (pytest-xdist), on SQLite and then again on PostgreSQL. Arguments go to pytest: a file,
# `-m "not subprocess"`, `-n 0` for one process.
#
# The PostgreSQL pass starts a throwaway server (scripts/postgres.sh: installs Debian's
# package when missing, as root) and runs every test that does not start a process or read
# SQLite's own files. It runs for the whole suite (no arguments) unless TEST_POSTGRES=0;
# TEST_POSTGRES=1 runs it for a targeted run too.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The staff page's browser test (tests/test_staff_browser.py) drives Debian's Chromium through
# its chromedriver: installed here when missing (as root, on a fresh Debian machine).
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "The browser test needs Debian's chromium and chromium-driver (apt-get install as root)." >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi
# Keep compiled bytecode (pytest's rewritten test modules too) under .venv even where
# PYTHONDONTWRITEBYTECODE is set: otherwise every worker and every `python -m bot` a test starts
# compiles it all again, several seconds of CPU each.
unset PYTHONDONTWRITEBYTECODE
export PYTHONPYCACHEPREFIX="$PWD/.venv/pycache"
.venv/bin/ruff check .
.venv/bin/mypy
# One worker more than cores: tests spend part of their time waiting on sockets, database
# threads and child processes, and the extra worker keeps every core busy meanwhile.
# loadgroup: tests marked xdist_group(name) share one worker (and its session fixtures).
workers=${TEST_WORKERS:-$(($(nproc) + 1))}
echo "== SQLite" >&2
env -u TEST_DATABASE_URL .venv/bin/python -m pytest -n "$workers" --dist loadgroup "$@"
postgres=${TEST_POSTGRES:-auto}
if [ "$postgres" = 1 ] || { [ "$postgres" = auto ] && [ "$#" -eq 0 ]; }; then
  # shellcheck source=scripts/postgres.sh
  source scripts/postgres.sh start
  trap 'bash scripts/postgres.sh stop' EXIT
  echo "== PostgreSQL" >&2
  .venv/bin/python -m pytest -n "$workers" --dist loadgroup -m "not subprocess" "$@"
fi
