#!/usr/bin/env bash
# Runs every test of the project: formatting, clippy, the Rust test suites with moto serving DynamoDB, SSM and S3
# on a free loopback port, and the infra checks (cfn-lint, checkov, template assertions) when infra/ is present.
#
#   scripts/test.sh            # everything
#   scripts/test.sh --rust     # only the Rust parts
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

only_rust=false
[[ "${1:-}" == "--rust" ]] && only_rust=true

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
# The operator build of brokerctl, without the local stack and its development stand-ins, must keep compiling.
cargo clippy -p brokerctl --no-default-features --quiet -- -D warnings

# The Lambda runtime tests (authorizer/, broker/ and trigger/tests/runtime_api.rs) run the functions' real
# release binaries, built here with the release profile the deployment zips use (x86_64: the arm64 cross-build is
# scripts/build-lambdas.sh, a release step). Set TB_LAMBDA_BIN_DIR yourself to test other builds.
if [[ -n "${TB_LAMBDA_BIN_DIR:-}" ]]; then
  echo "== runtime tests use the binaries in TB_LAMBDA_BIN_DIR=$TB_LAMBDA_BIN_DIR (not rebuilt)"
else
  echo "== cargo build --release (the Lambda binaries the runtime tests run)"
  # The directory comes from cargo's own report of what it built, so a target dir or target triple set in a cargo
  # config cannot leave the tests running an older binary from somewhere else.
  bin_dirs="$(cargo build --release --quiet -p tb-authorizer -p tb-broker -p tb-trigger --bins \
    --message-format=json-render-diagnostics | python3 -c '
import json, os, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] in ("authorizer", "broker", "trigger"):
        print(os.path.dirname(os.path.abspath(m["executable"])))
' | sort -u)"
  if [[ "$(wc -l <<<"$bin_dirs")" -ne 1 || -z "$bin_dirs" ]]; then
    echo "test.sh: expected the function binaries in one directory, got: ${bin_dirs:-nothing}" >&2
    exit 1
  fi
  export TB_LAMBDA_BIN_DIR="$bin_dirs"
fi

echo "== cargo test (with moto)"
scripts/with-moto.sh cargo test --workspace --no-fail-fast

if ! $only_rust && [[ -x scripts/lint-infra.sh ]]; then
  echo "== infra: cfn-lint, checkov, template assertions"
  scripts/lint-infra.sh
fi
