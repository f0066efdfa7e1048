#!/usr/bin/env bash
# Benchmarks of rover-agent side by side with HashiCorp Serf on loopback, one JSON object per
# line on stdout, a table of medians and rover/serf ratios on stderr.
#
#   scripts/bench.sh            # the default set (about 15 minutes)
#   scripts/bench.sh --quick    # N = 5 only, shorter windows (under 3 minutes)
#   scripts/bench.sh --scenario join --scenario idle   # only these; see scripts/bench.py --help
#
# Installs what it needs when missing (Debian packages serf, python3-msgpack, python3-aiosmtpd),
# builds the release binary and the simulation benchmark, then runs scripts/bench.py.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/packages.sh
. scripts/packages.sh
install_packages "serf:serf" "python3-msgpack" "python3-aiosmtpd"
cargo build --release --quiet --bin rover-agent
cargo build --release --quiet -p rover-membership --example sim_bench
# Debian's python3 sees Debian's python3-msgpack and python3-aiosmtpd even when another python3
# comes first in PATH.
python=python3
if [ -x /usr/bin/python3 ]; then python=/usr/bin/python3; fi
exec "$python" scripts/bench.py "$@"
