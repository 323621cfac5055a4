#!/usr/bin/env bash
# Installs what the tests need if it is missing, then runs fmt, clippy and every test.
#
# - Debian packages: zstd, openssl, tar, coreutils (sha256sum), prometheus-alertmanager (a real
#   Alertmanager for the daemon's end-to-end test), python3-venv when venv is missing.
# - Python tools into a local virtualenv (.venv): bagit (bagit.py, the BagIt validator) and
#   moto[server] (moto_server, an S3 implementation with versioning and Object Lock).
#
# Services: three moto_server processes on free loopback ports, stopped on exit: one for the S3
# tests (CUSTODY_TEST_S3_ENDPOINT), a second S3 endpoint with buckets of the same names
# (CUSTODY_TEST_S3_SECOND_ENDPOINT), and one that checks credentials
# (CUSTODY_TEST_S3_AUTH_ENDPOINT).
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
command -v ssh-keygen >/dev/null || missing+=(openssh-client)
[ -x /usr/bin/prometheus-alertmanager ] || missing+=(prometheus-alertmanager)
if [ ${#missing[@]} -gt 0 ]; then
    apt_install "${missing[@]}"
fi

venv=$root/.venv
if [ ! -x "$venv/bin/python3" ]; then
    if ! python3 -m venv "$venv" 2>/dev/null; then
        apt_install python3-venv
        rm -rf "$venv"
        python3 -m venv "$venv"
    fi
fi
python_tools=('bagit==1.9.0' 'moto[server]==5.2.5')
if [ ! -x "$venv/bin/bagit.py" ] || [ ! -x "$venv/bin/moto_server" ]; then
    log "pip install ${python_tools[*]} into $venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "${python_tools[@]}"
fi
export PATH="$venv/bin:$PATH"
export CUSTODY_TEST_BAGIT="$venv/bin/bagit.py"
"$CUSTODY_TEST_BAGIT" --version >/dev/null

# moto_server: started here, stopped however this script ends.
service_logs=$(mktemp -d)
stop_services() {
    local pidfile
    for pidfile in "$service_logs"/*.pid; do
        [ -e "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
    done
    rm -rf "$service_logs"
}
trap stop_services EXIT
free_port() {
    "$venv/bin/python3" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# start_moto NAME [ENV=VALUE...]: prints the endpoint once the server answers.
start_moto() {
    local name=$1; shift
    local port
    port=$(free_port)
    env "$@" "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$service_logs/$name.log" 2>&1 &
    echo $! >"$service_logs/$name.pid"
    for _ in $(seq 150); do
        if "$venv/bin/python3" -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null; then
            echo "http://127.0.0.1:$port"
            return 0
        fi
        sleep 0.2
    done
    log "moto_server ($name) did not start:"
    cat "$service_logs/$name.log" >&2
    return 1
}
log "starting moto_server"
s3_endpoint=$(start_moto s3)
s3_second_endpoint=$(start_moto s3-second)
s3_auth_endpoint=$(start_moto s3-auth INITIAL_NO_AUTH_ACTION_COUNT=0)
export CUSTODY_TEST_S3_ENDPOINT=$s3_endpoint
export CUSTODY_TEST_S3_SECOND_ENDPOINT=$s3_second_endpoint
export CUSTODY_TEST_S3_AUTH_ENDPOINT=$s3_auth_endpoint

log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy"
cargo clippy --all-targets --locked -- -D warnings
log "cargo test"
cargo test --all-targets --locked
