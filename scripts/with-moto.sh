#!/usr/bin/env bash
# Runs a command with moto's AWS API emulator serving DynamoDB, SSM and S3 on a free loopback port.
#
#   scripts/with-moto.sh cargo test --workspace
#
# Installs moto into the project-local virtualenv .venv-moto when missing, starts it (one request at a time, see
# scripts/moto_server.py), exports TB_MOTO_ENDPOINT and fake credentials for the command, and stops it afterwards.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv-moto"

if ! "$venv/bin/python" -c "import moto.server, werkzeug" 2>/dev/null; then
  echo "with-moto: installing moto into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$root/scripts/requirements-moto.txt"
fi

state="$(mktemp -d)"
port_file="$state/port"
"$venv/bin/python" "$root/scripts/moto_server.py" "$port_file" >"$state/moto.log" 2>&1 &
moto_pid=$!
cleanup() {
  kill "$moto_pid" 2>/dev/null || true
  wait "$moto_pid" 2>/dev/null || true
  rm -rf "$state"
}
trap cleanup EXIT

for _ in $(seq 1 100); do
  [[ -s "$port_file" ]] && break
  if ! kill -0 "$moto_pid" 2>/dev/null; then
    echo "with-moto: moto failed to start:" >&2
    cat "$state/moto.log" >&2
    exit 1
  fi
  sleep 0.1
done
[[ -s "$port_file" ]] || { echo "with-moto: moto did not start within 10 s" >&2; exit 1; }

export TB_MOTO_ENDPOINT="http://127.0.0.1:$(cat "$port_file")"
# moto accepts any credentials; these keep the SDKs from looking for real ones.
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
echo "with-moto: emulator at $TB_MOTO_ENDPOINT" >&2
set +e
"$@"
status=$?
set -e
exit "$status"
