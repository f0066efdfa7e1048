#!/usr/bin/env bash
# Benchmarks of rover-agent on loopback, one JSON object per line on stdout.
# Usage: scripts/bench.sh [--quick] [--scenario failure|idle|alert|leader|notify|all]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin rover-agent
# Debian's python3 sees Debian's python3-aiosmtpd (the notify scenario's SMTP server) even when
# another python3 comes first in PATH.
python=python3
if [ -x /usr/bin/python3 ]; then python=/usr/bin/python3; fi
exec "$python" scripts/bench.py "$@"
