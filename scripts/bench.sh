#!/usr/bin/env bash
# Benchmarks of rover-agent on loopback, one JSON object per line on stdout.
# Usage: scripts/bench.sh [--quick] [--scenario failure|idle|alert|leader|all]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin rover-agent
exec python3 scripts/bench.py "$@"
