#!/usr/bin/env bash
# Grid-control records and key rotation of rover-agent on loopback: time for a record to reach
# every agent and for `keys use` to be acknowledged by every member (N = 5 and 20, median of 5
# runs), and the bytes of a record. One JSON object per line on stdout; the scenarios are in
# the docstring of scripts/benchlib/records_bench.py.
#
#   scripts/bench-records.sh                 # N = 5 and 20, 5 runs each (about 2 minutes)
#   scripts/bench-records.sh --n 5 --runs 3  # only these
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin rover-agent
binary="${CARGO_TARGET_DIR:-target}/release/rover-agent"
cd scripts
exec python3 -m benchlib.records_bench --binary "$(cd .. && realpath "$binary")" "$@"
