#!/usr/bin/env bash
# Builds both Lambda functions for provided.al2023 on arm64 and writes the deployable zips the SAM template points at:
#   infra/build/authorizer.zip   bootstrap (bin `authorizer`, package tb-authorizer) + policy.yaml
#   infra/build/broker.zip       bootstrap (bin `broker`, package tb-broker)         + policy.yaml
#
#   scripts/build-lambdas.sh [--policy path/to/policy.yaml]
#
# The policy document is bundled at the zip root, i.e. /var/task/policy.yaml in Lambda (the template's PolicyFile
# default). Without --policy, config/policy.example.yaml is bundled and a warning is printed: production builds must
# pass the real policy. A policy change is a rebuild and a `sam deploy` (docs/runbooks/add-a-caller.md).
#
# cargo-lambda and zig come from PyPI into .venv-lambda (pinned in scripts/requirements-infra-lambda.txt). The Rust
# standard library for aarch64-unknown-linux-gnu is added with rustup when missing. A clean release build takes
# about 7 minutes of two cores (lto, codegen-units 1): this is a release step, not part of CI's test run.
# CARGO_TARGET_DIR is honoured (default: <repo>/target).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
python="${PYTHON:-python3}"
policy="config/policy.example.yaml"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --policy) policy="$2"; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "build-lambdas: unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ -f "$policy" ]] || { echo "build-lambdas: policy file $policy not found" >&2; exit 1; }
if [[ "$policy" == "config/policy.example.yaml" ]]; then
  echo "build-lambdas: WARNING: bundling the EXAMPLE policy ($policy); pass --policy for a real deployment" >&2
fi

venv=.venv-lambda
req=scripts/requirements-infra-lambda.txt
stamp="$(sha256sum "$req" | cut -d' ' -f1)"
if [[ ! -x "$venv/bin/cargo-lambda" || "$(cat "$venv/.requirements-sha256" 2>/dev/null)" != "$stamp" ]]; then
  echo "build-lambdas: installing cargo-lambda and zig into $venv" >&2
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
  echo "$stamp" >"$venv/.requirements-sha256"
fi
# cargo-lambda finds `cargo-lambda` and zig (python -m ziglang) through PATH.
export PATH="$root/$venv/bin:$PATH"

target=aarch64-unknown-linux-gnu
if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx "$target"; then
  echo "build-lambdas: adding the Rust standard library for $target" >&2
  rustup target add "$target"
fi

target_dir="${CARGO_TARGET_DIR:-$root/target}"
start=$(date +%s)
cargo lambda build --release --arm64 --output-format zip --bin authorizer --bin broker
echo "build-lambdas: cargo lambda build took $(( $(date +%s) - start )) s" >&2

mkdir -p infra/build
for fn in authorizer broker; do
  src="$target_dir/lambda/$fn/bootstrap.zip"
  [[ -f "$src" ]] || { echo "build-lambdas: $src was not produced" >&2; exit 1; }
  out="infra/build/$fn.zip"
  "$python" - "$src" "$policy" "$out" <<'PY'
import sys, zipfile
src, policy, out = sys.argv[1:]
with zipfile.ZipFile(src) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zout:
    names = zin.namelist()
    assert "bootstrap" in names, f"{src} has no bootstrap: {names}"
    for info in zin.infolist():
        if info.filename == "policy.yaml":
            continue
        if info.filename == "bootstrap":
            info.external_attr = 0o100755 << 16  # regular file, executable: Lambda runs it
            info.create_system = 3  # unix, so the mode bits are honoured
        zout.writestr(info, zin.read(info.filename))
    pi = zipfile.ZipInfo("policy.yaml", date_time=(1980, 1, 1, 0, 0, 0))
    pi.create_system = 3
    pi.external_attr = 0o100644 << 16
    pi.compress_type = zipfile.ZIP_DEFLATED
    with open(policy, "rb") as f:
        zout.writestr(pi, f.read())
PY
done

"$python" - infra/build/authorizer.zip infra/build/broker.zip <<'PY'
import os, sys, zipfile
limit = 5_000_000  # the 5 MB target, read as decimal megabytes (the stricter reading)
for path in sys.argv[1:]:
    size = os.path.getsize(path)
    with zipfile.ZipFile(path) as z:
        boot = z.getinfo("bootstrap").file_size
    name = os.path.basename(path)
    print(f"build-lambdas: {name:15} {size:9d} bytes ({size / 1048576:.2f} MiB)  bootstrap {boot / 1048576:.2f} MiB uncompressed")
    if size >= limit:
        print(f"build-lambdas: WARNING: {name} is over the 5 MB target", file=sys.stderr)
PY
