#!/usr/bin/env bash
# Builds the Lambda functions for provided.al2023 on arm64 and writes the deployable zips the templates point at:
#   infra/build/authorizer.zip   bootstrap (bin `authorizer`, package tb-authorizer) + policy.yaml
#   infra/build/broker.zip       bootstrap (bin `broker`, package tb-broker)         + policy.yaml
#   infra/build/trigger.zip      bootstrap (bin `trigger`, package tb-trigger), no policy (infra/cognito-example.yaml)
#
#   scripts/build-lambdas.sh --policy path/to/policy.yaml
#   scripts/build-lambdas.sh --allow-example-policy      # local experiments only
#
# The policy document is bundled at the zip root, i.e. /var/task/policy.yaml in Lambda (the template's PolicyFile
# default). --policy is required: config/policy.example.yaml names real-looking callers and a predictable
# usage_plan_key, so bundling it is refused unless --allow-example-policy says that is what you want. A policy change
# is a rebuild and a `sam deploy` (docs/runbooks/add-a-caller.md). The zips are assembled by
# scripts/assemble_lambda_zip.py (bootstrap mode 0755, policy.yaml at the root; tested in infra/tests).
#
# cargo-lambda and zig come from PyPI into .venv-lambda (pinned in scripts/requirements-infra-lambda.txt). The Rust
# standard library for aarch64-unknown-linux-gnu is added with rustup when missing. A clean release build takes
# about 7 minutes of two cores (lto, codegen-units 1): this is a release step, not part of CI's test run.
# CARGO_TARGET_DIR is honoured (default: <repo>/target).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
python="${PYTHON:-python3}"
example="config/policy.example.yaml"
policy=""
allow_example=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --policy) [[ $# -ge 2 ]] || { echo "build-lambdas: --policy needs a file" >&2; exit 2; }; policy="$2"; shift 2 ;;
    --allow-example-policy) allow_example=1; shift ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "build-lambdas: unknown argument $1" >&2; exit 2 ;;
  esac
done
if [[ -z "$policy" ]]; then
  if [[ $allow_example == 0 ]]; then
    echo "build-lambdas: pass --policy path/to/policy.yaml (the policy to deploy), or --allow-example-policy to bundle $example for a local experiment" >&2
    exit 2
  fi
  policy="$example"
fi
[[ -f "$policy" ]] || { echo "build-lambdas: policy file $policy not found" >&2; exit 1; }
if [[ "$(realpath "$policy")" == "$(realpath "$example")" ]]; then
  if [[ $allow_example == 0 ]]; then
    echo "build-lambdas: $policy is the EXAMPLE policy; pass --allow-example-policy if you really mean to bundle it" >&2
    exit 2
  fi
  echo "build-lambdas: WARNING: bundling the EXAMPLE policy ($policy): not for a real deployment" >&2
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
cargo lambda build --release --arm64 --output-format zip --bin authorizer --bin broker --bin trigger
echo "build-lambdas: cargo lambda build took $(( $(date +%s) - start )) s" >&2

mkdir -p infra/build
for fn in authorizer broker trigger; do
  src="$target_dir/lambda/$fn/bootstrap.zip"
  [[ -f "$src" ]] || { echo "build-lambdas: $src was not produced" >&2; exit 1; }
  out="infra/build/$fn.zip"
  # The trigger reads no policy: its zip holds the bootstrap alone.
  fn_policy="$policy"
  [[ $fn == trigger ]] && fn_policy=-
  "$python" scripts/assemble_lambda_zip.py assemble "$src" "$fn_policy" "$out"
done

"$python" scripts/assemble_lambda_zip.py report infra/build/authorizer.zip infra/build/broker.zip infra/build/trigger.zip
# The trigger sits in every client-credentials token's path (Cognito gives it 5 s, cold start included): its zip is
# held to the 5 MB target, not only warned about.
trigger_size=$(stat -c %s infra/build/trigger.zip)
if (( trigger_size >= 5000000 )); then
  echo "build-lambdas: trigger.zip is $trigger_size bytes, over the 5,000,000-byte limit" >&2
  exit 1
fi
