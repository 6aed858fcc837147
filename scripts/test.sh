#!/usr/bin/env bash
# Set up (if needed), lint, type-check and run the whole test suite on every core
# (pytest-xdist). Arguments go to pytest: a file, `-m "not subprocess"`, `-n 0` for one process.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
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
.venv/bin/python -m pytest -n "$workers" --dist loadgroup "$@"
