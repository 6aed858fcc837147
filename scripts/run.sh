#!/usr/bin/env bash
# Set up (if needed) and run the bot: the configured channels, or the console chat when no
# token is configured. Extra arguments replace the default subcommand, e.g. `chat --lang en`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ "$#" -eq 0 ]; then set -- run; fi
exec .venv/bin/python -m bot "$@"
