#!/usr/bin/env bash
# Installs what the tests need if it is missing, then runs fmt, clippy and every test.
#
# - Debian packages: zstd, openssl, tar, coreutils (sha256sum), python3-venv when venv is missing.
# - Python tools into a local virtualenv (.venv): bagit (bagit.py, the BagIt validator).
#
# A tool that cannot be installed fails this script; the tests that need it fail loudly too,
# never skip.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

log() { printf '==> %s\n' "$*" >&2; }

apt_updated=0
apt_install() {
    if [ "$apt_updated" = 0 ]; then
        log "apt-get update"
        apt-get update -qq
        apt_updated=1
    fi
    log "apt-get install $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

missing=()
command -v zstd >/dev/null || missing+=(zstd)
command -v openssl >/dev/null || missing+=(openssl)
command -v tar >/dev/null || missing+=(tar)
command -v sha256sum >/dev/null || missing+=(coreutils)
command -v python3 >/dev/null || missing+=(python3)
if [ ${#missing[@]} -gt 0 ]; then
    apt_install "${missing[@]}"
fi

venv=$root/.venv
if [ ! -x "$venv/bin/bagit.py" ]; then
    if ! python3 -m venv "$venv" 2>/dev/null; then
        apt_install python3-venv
        python3 -m venv "$venv"
    fi
    log "pip install bagit into $venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check 'bagit==1.9.0'
fi
export PATH="$venv/bin:$PATH"
export CUSTODY_TEST_BAGIT="$venv/bin/bagit.py"
"$CUSTODY_TEST_BAGIT" --version >/dev/null

log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy"
cargo clippy --all-targets --locked -- -D warnings
log "cargo test"
cargo test --all-targets --locked
