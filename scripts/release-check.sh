#!/usr/bin/env bash
# Tests what ships: builds the arm64 deployment zips with scripts/build-lambdas.sh (authorizer, broker, trigger), takes
# the `bootstrap` binary out of each zip, and runs the Lambda runtime tests on those exact binaries under
# qemu-user-static (the functions run against the project's Runtime API emulator, with moto for S3, SSM and DynamoDB,
# as in the ordinary test run).
#
#   scripts/release-check.sh --policy path/to/policy.yaml     # the arguments go to scripts/build-lambdas.sh
#   scripts/release-check.sh --allow-example-policy           # a rehearsal with the example policy
#   scripts/release-check.sh --zips-only-test                 # skip the build: test the zips already in infra/build
#
# This is a release step, not part of `scripts/test.sh`: the arm64 release build takes about 7 minutes of two cores
# from clean and needs the aarch64 Rust standard library from rustup, and emulated binaries run the runtime tests
# several times slower. The Debian packages qemu-user-static and libc6-arm64-cross (the aarch64 loader and libc the
# dynamically linked bootstrap needs) are installed with apt-get when missing.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

build=true
args=()
for a in "$@"; do
  case "$a" in
    --zips-only-test) build=false ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) args+=("$a") ;;
  esac
done

sysroot=/usr/aarch64-linux-gnu
if ! command -v qemu-aarch64-static >/dev/null || [[ ! -e "$sysroot/lib/ld-linux-aarch64.so.1" ]]; then
  echo "release-check: installing qemu-user-static and libc6-arm64-cross" >&2
  sudo_=""
  [[ "$(id -u)" -ne 0 ]] && sudo_="sudo"
  $sudo_ apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -q qemu-user-static libc6-arm64-cross >/dev/null
fi

if $build; then
  scripts/build-lambdas.sh "${args[@]}"
fi

bins="$(mktemp -d)"
trap 'rm -rf "$bins"' EXIT
for fn in authorizer broker trigger; do
  zip="infra/build/$fn.zip"
  [[ -f "$zip" ]] || { echo "release-check: $zip is missing (run without --zips-only-test)" >&2; exit 1; }
  python3 - "$zip" "$bins/$fn" <<'PY'
import os, stat, sys, zipfile
src, out = sys.argv[1:]
with zipfile.ZipFile(src) as z:
    info = z.getinfo("bootstrap")
    mode = (info.external_attr >> 16) & 0o777
    assert mode & 0o111, f"{src}: bootstrap is not executable in the zip (mode {oct(mode)}): Lambda could not run it"
    # The trigger reads no policy, and ships none; the other two read /var/task/policy.yaml.
    wants_policy = os.path.basename(src) != "trigger.zip"
    assert ("policy.yaml" in z.namelist()) == wants_policy, f"{src}: policy.yaml present is not {wants_policy}"
    with open(out, "wb") as f:
        f.write(z.read(info))
os.chmod(out, 0o755)
PY
  file_type="$(file -b "$bins/$fn")"
  [[ "$file_type" == *"ARM aarch64"* ]] || { echo "release-check: $fn bootstrap is not arm64: $file_type" >&2; exit 1; }
  echo "release-check: $fn: $file_type" >&2
done

export TB_LAMBDA_BIN_DIR="$bins"
export TB_LAMBDA_RUNNER="qemu-aarch64-static -L $sysroot"
start=$(date +%s)
# Every test file that runs a function binary under the Runtime API emulator (they all find it through
# tb_devkit::runtime_api::function_binary, which honours both variables above), grouped by package.
status=0
for pkg in authorizer broker trigger; do
  tests=()
  for t in "$pkg"/tests/*.rs; do
    grep -q "function_binary(" "$t" && tests+=(--test "$(basename "$t" .rs)")
  done
  [[ ${#tests[@]} -gt 0 ]] || { echo "release-check: no runtime tests found in $pkg/tests" >&2; exit 1; }
  echo "release-check: tb-$pkg ${tests[*]} on the arm64 binary under qemu" >&2
  scripts/with-moto.sh cargo test -p "tb-$pkg" "${tests[@]}" --no-fail-fast || status=1
done
echo "release-check: runtime tests on the shipped binaries took $(( $(date +%s) - start )) s" >&2
exit $status
