"""Expands a SAM template into plain CloudFormation offline, with aws-sam-translator (the library `sam build`,
`sam validate` and CloudFormation's own transform use).

    python infra/tests/sam_expand.py infra/template.yaml [--propagate-checkov-skips] > expanded.json

Local artefact paths (CodeUri: build/authorizer.zip) are swapped for placeholder S3 locations first, as
`sam package` would do, and no IAM call is made (the template names no managed policy for SAM to resolve).
"""

import copy
import json
import logging
import os
import sys

from cfnlint.decode import cfn_yaml
from samtranslator.translator.transform import transform

PLACEHOLDER_BUCKET = "token-broker-artifacts-placeholder"

# The translator resolves AWS::Region/AWS::Partition from the environment; any commercial region gives the same shape.
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


class _NoManagedPolicies:
    """SAM only asks for managed policy ARNs when a function lists policy names; ours use explicit roles."""

    def load(self):
        return {}


def _plain(node):
    """cfn-lint's decoder returns str/dict/list subclasses carrying line marks; the translator wants plain types."""
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    if isinstance(node, str):
        return str(node)
    return node


def load(path):
    return _plain(cfn_yaml.load(path))


def propagate_checkov_skips(source, expanded):
    """A checkov skip written on a SAM resource also covers the resources SAM generates from it (TokenApi ->
    TokenApiStage, TokenApiDeployment...), which have no Metadata of their own to carry it."""
    for name, res in source.get("Resources", {}).items():
        skips = res.get("Metadata", {}).get("checkov")
        if not skips:
            continue
        for gen_name, gen in expanded.get("Resources", {}).items():
            if gen_name != name and gen_name.startswith(name) and "checkov" not in gen.get("Metadata", {}):
                gen.setdefault("Metadata", {})["checkov"] = copy.deepcopy(skips)
    return expanded


def expand(template, parameters=None):
    tpl = copy.deepcopy(template)
    for name, res in tpl.get("Resources", {}).items():
        if res.get("Type") == "AWS::Serverless::Function":
            code = res.get("Properties", {}).get("CodeUri")
            if isinstance(code, str) and not code.startswith("s3://"):
                res["Properties"]["CodeUri"] = f"s3://{PLACEHOLDER_BUCKET}/{name}.zip"
    return _plain(transform(tpl, parameters or {}, _NoManagedPolicies()))


if __name__ == "__main__":
    logging.getLogger("samtranslator").setLevel(logging.ERROR)
    src = load(sys.argv[1])
    out = expand(src)
    if "--propagate-checkov-skips" in sys.argv[2:]:
        out = propagate_checkov_skips(src, out)
    json.dump(out, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
