#!/usr/bin/env bash
# Builds the Debian package of rover-agent: target/debian/rover-agent_<version>_<arch>.deb.
#
#   scripts/package.sh            # release build, man page, completions, then cargo deb
#
# Installs cargo-deb (cargo install) when it is missing. The package holds the binary, the
# systemd unit (packaging/rover-agent.service), a commented default config
# (/etc/rover-agent/agent.toml), the man page and bash, zsh and fish completions (printed by
# the binary itself: `rover-agent man`, `rover-agent completions SHELL`); its postinst creates
# the system user rover-agent. Prints the .deb's path and size.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v cargo >/dev/null 2>&1 && [[ -f "$HOME/.cargo/env" ]]; then
    # shellcheck source=/dev/null
    . "$HOME/.cargo/env"
fi
if ! cargo deb --version >/dev/null 2>&1; then
    echo "==> installing cargo-deb"
    cargo install cargo-deb --locked
fi
# cargo deb writes into target/ of this checkout; so does everything below.
unset CARGO_TARGET_DIR

echo "==> cargo build --release"
cargo build --release --bin rover-agent

echo "==> man page and completions"
out=target/package
rm -rf "$out"
mkdir -p "$out/completions"
target/release/rover-agent man | gzip -9n > "$out/rover-agent.1.gz"
target/release/rover-agent completions bash > "$out/completions/rover-agent"
target/release/rover-agent completions zsh > "$out/completions/_rover-agent"
target/release/rover-agent completions fish > "$out/completions/rover-agent.fish"

echo "==> cargo deb"
deb=$(cargo deb --no-build | tail -n 1)
[[ -f "$deb" ]] || { echo "cargo deb made no package" >&2; exit 1; }
printf '==> %s (%s bytes)\n' "$deb" "$(stat -c %s "$deb")"
