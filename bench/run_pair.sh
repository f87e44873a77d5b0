#!/usr/bin/env bash
# The seed relay (Deno, bench/seed/) and chat-stream side by side in ONE run, each alone on core 0
# against the instant Supabase stub; the stand-in, the stub and the load generator on core 1. Prints
# the issue's table (added TTFT, CPU per 1k tokens, the c=400 split); JSON with --json.
#
#   bench/run_pair.sh --json /tmp/pair.json
#   bench/run_pair.sh --code /tmp/main-head -c 100      # another checkout of chat-stream
#
# Installs what it needs first: the venv (make install) and Deno + supabase-js (npm ci --prefix
# bench, pinned by bench/package-lock.json). Every option goes to `python -m bench.pair`.
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in taskset npm make; do
  command -v "$tool" >/dev/null || { echo "run_pair: $tool is required" >&2; exit 2; }
done
if [ "$(nproc)" -lt 2 ]; then
  echo "run_pair: needs 2 cores (a relay on core 0, everything else on core 1)" >&2
  exit 2
fi
make --no-print-directory install
if [ ! bench/node_modules/.package-lock.json -nt bench/package-lock.json ]; then
  npm ci --prefix bench --no-audit --no-fund --loglevel=error
fi
exec .venv/bin/python -m bench.pair "$@"
