#!/usr/bin/env bash
# Notification scenarios of rover-agent side by side with HashiCorp Serf event handlers: both
# mail one real SMTP server (aiosmtpd); emails per incident for each tool, one JSON object per
# line on stdout, a Markdown table on stderr. Scenarios and the counting window: the docstring of
# scripts/benchlib/notify_compare.py.
#
#   scripts/bench-notify.sh                       # all six scenarios (about 6 minutes)
#   scripts/bench-notify.sh --quick               # kill_one and kill_two only
#   scripts/bench-notify.sh --scenario sigstop --scenario no_quorum   # only these
#   scripts/bench-notify.sh --keep-logs /tmp/notify-logs   # keep every agent's log
#
# Installs what it needs when missing (Debian packages serf, python3-msgpack, python3-aiosmtpd),
# builds the release binary, then runs benchlib.notify_compare.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/packages.sh
. scripts/packages.sh
install_packages "serf:serf" "python3-msgpack" "python3-aiosmtpd"
cargo build --release --quiet --bin rover-agent
# Debian's python3 sees Debian's python3-msgpack and python3-aiosmtpd even when another python3
# comes first in PATH.
python=python3
if [ -x /usr/bin/python3 ]; then python=/usr/bin/python3; fi
cd scripts
exec "$python" -m benchlib.notify_compare "$@"
