#!/usr/bin/env bash
# `npm run bench`: start throwaway PostgreSQL (durable settings) and Redis as the test command
# does, run bench/run.ts, write docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SIYU_MODE=bench exec bash scripts/test.sh "$@"
