# Installs missing Debian packages; sourced by test.sh, bench.sh and bench-notify.sh.
#
#   install_packages "package" "package:command" ...
#
# With a command, finding it in PATH (or at that path) counts as installed, otherwise dpkg is
# asked. Missing packages are installed with apt-get (as root, or with `sudo -n`); a package that
# ships a system service (serf, lldpd, prometheus) has that service stopped and disabled again when this function
# installed it, so that benchmarks never leave a daemon behind.

package_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

install_packages() {
    local entry pkg cmd missing=()
    for entry in "$@"; do
        pkg=${entry%%:*}
        cmd=${entry#*:}
        [[ $entry == *:* ]] || cmd=
        if [[ -n $cmd ]] && command -v "$cmd" >/dev/null 2>&1; then
            continue
        fi
        package_installed "$pkg" || missing+=("$pkg")
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0

    printf '==> installing system packages: %s\n' "${missing[*]}" >&2
    local sudo=()
    if [[ $(id -u) -ne 0 ]]; then
        if command -v sudo >/dev/null 2>&1; then
            sudo=(sudo -n)
        else
            echo "missing packages ${missing[*]}, and not root (no sudo) to install them" >&2
            return 1
        fi
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "missing packages ${missing[*]}, and no apt-get: install them by hand" >&2
        return 1
    fi
    local log
    log=$(mktemp)
    if ! "${sudo[@]}" apt-get -qq update >"$log" 2>&1 ||
        ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
            apt-get -qq install -y --no-install-recommends "${missing[@]}" >>"$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log"
        echo "apt-get failed to install: ${missing[*]}" >&2
        return 1
    fi
    rm -f "$log"
    for pkg in "${missing[@]}"; do
        if [[ $pkg == serf || $pkg == lldpd || $pkg == prometheus ]] && command -v systemctl >/dev/null 2>&1; then
            "${sudo[@]}" systemctl disable --now "$pkg.service" >/dev/null 2>&1 || true
        fi
    done
}
