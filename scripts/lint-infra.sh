#!/usr/bin/env bash
# Checks the infrastructure templates offline:
#   1. cfn-lint on every template as written (infra/template.yaml, infra/cognito-example.yaml);
#   2. cfn-lint on the SAM template expanded to plain CloudFormation by aws-sam-translator (what CloudFormation
#      deploys; cfn-lint alone validates SAM resources against SAM's schema without expanding them);
#   3. checkov (cloudformation + secrets) on the templates and the expanded template; every suppression is a
#      Metadata.checkov.skip with its reason in the template (index at the top of infra/template.yaml);
#   4. the template assertions (pytest infra/tests).
#
#   scripts/lint-infra.sh            # all of the above
#   scripts/lint-infra.sh --no-checkov
#
# Tools live in project-local virtualenvs, created on first use from pinned requirements and re-created when the
# requirements file changes: .venv-cfnlint (cfn-lint, aws-sam-translator, pytest) and .venv-checkov (checkov).
# Nothing here talks to AWS.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
python="${PYTHON:-python3}"
run_checkov=1
[[ "${1:-}" == "--no-checkov" ]] && run_checkov=0

ensure_venv() { # venv-dir requirements-file import-check
  local venv="$1" req="$2" check="$3" stamp
  stamp="$(sha256sum "$req" | cut -d' ' -f1)"
  if [[ -x "$venv/bin/python" && "$(cat "$venv/.requirements-sha256" 2>/dev/null)" == "$stamp" ]] \
    && "$venv/bin/python" -c "$check" 2>/dev/null; then
    return
  fi
  echo "lint-infra: installing $(basename "$req") into $venv" >&2
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
  echo "$stamp" >"$venv/.requirements-sha256"
}

step() { printf "\n== %s\n" "$*"; }

ensure_venv .venv-cfnlint scripts/requirements-infra-cfnlint.txt "import cfnlint, samtranslator, pytest"
[[ $run_checkov == 1 ]] && ensure_venv .venv-checkov scripts/requirements-infra-checkov.txt "import checkov"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
templates=(infra/template.yaml infra/cognito-example.yaml)
expanded="$work/template.expanded.json"

step "cfn-lint: ${templates[*]}"
.venv-cfnlint/bin/cfn-lint "${templates[@]}"

step "SAM expansion: infra/template.yaml -> plain CloudFormation"
.venv-cfnlint/bin/python infra/tests/sam_expand.py infra/template.yaml --propagate-checkov-skips >"$expanded"
echo "$(grep -c "\"Type\": \"AWS::" "$expanded") resource entries"

step "cfn-lint: expanded template"
.venv-cfnlint/bin/cfn-lint "$expanded"

# checkov drops resources whose Condition is false under the parameters' defaults, so the fleet token cache (off by
# default) is scanned in a copy of the template with FleetTokenCacheEnabled defaulting to "true".
enabled="$work/template.fleet-token-cache.yaml"
sed -e '/^  FleetTokenCacheEnabled:/,/Default:/ s/Default: "false"/Default: "true"/' infra/template.yaml >"$enabled"
if cmp -s infra/template.yaml "$enabled"; then
  echo "lint-infra: could not turn FleetTokenCacheEnabled on in a copy of the template" >&2
  exit 1
fi
expanded_enabled="$work/template.fleet-token-cache.expanded.json"
.venv-cfnlint/bin/python infra/tests/sam_expand.py "$enabled" --propagate-checkov-skips >"$expanded_enabled"
step "cfn-lint: FleetTokenCacheEnabled=true (as written and expanded)"
.venv-cfnlint/bin/cfn-lint "$enabled" "$expanded_enabled"

if [[ $run_checkov == 1 ]]; then
  # --skip-download: offline, no Prisma Cloud guideline/mapping fetch.
  checkov=(.venv-checkov/bin/checkov --skip-download --compact --quiet)
  step "checkov (cloudformation, secrets): ${templates[*]}"
  "${checkov[@]}" --framework cloudformation secrets -f infra/template.yaml -f infra/cognito-example.yaml
  # The expanded JSON cannot carry the inline CKV_SECRET_6 skip of the YAML; the secrets scan ran on the source above.
  step "checkov (cloudformation): expanded template"
  "${checkov[@]}" --framework cloudformation -f "$expanded"
  step "checkov (cloudformation): FleetTokenCacheEnabled=true (as written and expanded)"
  "${checkov[@]}" --framework cloudformation -f "$enabled" -f "$expanded_enabled"
fi

step "template assertions: pytest infra/tests"
.venv-cfnlint/bin/python -m pytest infra/tests -q -p no:cacheprovider

echo "lint-infra: OK"
