#!/usr/bin/env bash
# Runs every test of rover-agent: the one command for a fresh Debian 12 machine and for CI.
#
#   scripts/test.sh                 # install what the tests need, check formatting, build, test
#   scripts/test.sh -E 'test(sim)'  # extra arguments go to the test runner (nextest or cargo test)
#
# Steps: (1) install the missing system packages listed below (apt-get, quietly, only if
# something is missing), (2) `cargo fmt --check`, (3) clippy with warnings as errors (the
# workspace lints, `unwrap_used` included), (4) build every target, (5) run the tests with
# cargo-nextest if it is installed, else `cargo test`. Exits non-zero if any step fails.
set -euo pipefail

# ---------------------------------------------------------------------------------------------
# System packages the tests need (Debian names). Later work appends here.
# Each entry is "package" or "package:command"; with a command, finding it in PATH counts as
# installed, otherwise dpkg is asked.
TEST_PACKAGES=(
    "iproute2:ip" # `ip netns`, for the network-namespace tests
    "procps:ps"   # `ps`, to find and check agent processes
    "monitoring-plugins-basic:/usr/lib/nagios/plugins/check_tcp" # real Nagios plugins for the checks tests
    "python3-aiosmtpd:aiosmtpd" # a real SMTP server for the email notifier tests (tests/common/smtp.rs)
    "lldpd:lldpd"       # real LLDP/CDP switches for the topology tests (tests/common/switches.rs)
    "libcap2-bin:capsh" # an agent without CAP_NET_RAW (tests/topology.rs)
    "systemd:systemd-analyze" # `systemd-analyze verify` of the packaged unit (tests/packaging.rs)
    "prometheus:promtool"     # `promtool check metrics` of /metrics (tests/metrics.rs)
    "openssl:openssl"         # a throw-away CA for the ca_file tests (tests/notify_tls.rs)
    "chromium:chromium"       # the dashboard in a real browser (tests/dashboard.rs)
    "python3-websocket"       # its DevTools driver (tests/fixtures/browser.py)
)
# ---------------------------------------------------------------------------------------------

cd "$(dirname "${BASH_SOURCE[0]}")/.."

started=$(date +%s)
report_time() {
    local rc=$? elapsed=$(($(date +%s) - started))
    if [[ $rc -eq 0 ]]; then
        printf '==> all tests passed in %dm%02ds\n' $((elapsed / 60)) $((elapsed % 60))
    else
        printf '==> FAILED (exit %d) after %dm%02ds\n' "$rc" $((elapsed / 60)) $((elapsed % 60)) >&2
    fi
}
trap report_time EXIT

step() { printf '==> %s\n' "$*"; }

# cargo may be installed by rustup but not yet in PATH (fresh shell, CI runner).
if ! command -v cargo >/dev/null 2>&1 && [[ -f "$HOME/.cargo/env" ]]; then
    # shellcheck source=/dev/null
    . "$HOME/.cargo/env"
fi
command -v cargo >/dev/null 2>&1 || {
    echo "cargo not found: install Rust with rustup (https://rustup.rs)" >&2
    exit 1
}

# shellcheck source=scripts/packages.sh
. scripts/packages.sh
install_packages "${TEST_PACKAGES[@]}"

step "cargo fmt --check"
if ! cargo fmt --version >/dev/null 2>&1 && command -v rustup >/dev/null 2>&1; then
    rustup component add rustfmt >/dev/null 2>&1 || true
fi
cargo fmt --all -- --check

step "cargo clippy --workspace --all-targets -- -D warnings"
if ! cargo clippy --version >/dev/null 2>&1 && command -v rustup >/dev/null 2>&1; then
    rustup component add clippy >/dev/null 2>&1 || true
fi
cargo clippy --workspace --all-targets -- -D warnings

step "cargo build --workspace --all-targets"
cargo build --workspace --all-targets

if cargo nextest --version >/dev/null 2>&1; then
    step "cargo nextest run --workspace --no-fail-fast $*"
    cargo nextest run --workspace --no-fail-fast "$@"
else
    step "cargo test --workspace --no-fail-fast $* (cargo-nextest not installed)"
    cargo test --workspace --no-fail-fast "$@"
fi
