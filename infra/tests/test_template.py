"""Offline assertions on infra/template.yaml (and infra/cognito-example.yaml).

Every promise the SAM template makes about security and operations is a check (checks_*.py): a function taking the
template as written (parsed with cfn-lint's decoder, which understands !Ref/!Sub/!If) and the plain CloudFormation
that aws-sam-translator expands it to (what CloudFormation deploys), raising AssertionError when the promise is
broken. Names the Rust functions emit are read from their source (tplutil.rust_consts), never copied.

`test_template` runs each check on the real template. `test_mutation_is_caught` applies each realistic mistake of
mutations.py to a copy and requires that at least one check rejects it, so no check set can pass on everything.

    .venv-cfnlint/bin/python -m pytest infra/tests -q
"""

import copy
import os
import re
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import checks_api  # noqa: E402
import checks_observability  # noqa: E402
import checks_runtime  # noqa: E402
import checks_token_cache  # noqa: E402
import sam_expand  # noqa: E402
from mutations import MUTATIONS  # noqa: E402
from tplutil import COGNITO, HERE, TEMPLATE, one, props, resources, rust_consts, rust_list  # noqa: E402

CHECKS = {f.__name__[len("check_"):]: f for f in
          checks_api.CHECKS + checks_runtime.CHECKS + checks_observability.CHECKS + checks_token_cache.CHECKS}


@pytest.fixture(scope="module")
def source():
    return sam_expand.load(TEMPLATE)


@pytest.fixture(scope="module")
def expanded(source):
    return sam_expand.expand(source)


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_template(name, source, expanded):
    CHECKS[name](source, expanded)


def failing_checks(template):
    expanded = sam_expand.expand(template)
    failed = []
    for name, check in CHECKS.items():
        try:
            check(template, expanded)
        except (AssertionError, LookupError, TypeError, ValueError) as e:
            # A missing key or an unreadable value is as much a rejection as a failed assert.
            failed.append(f"{name}: {type(e).__name__}: {str(e)[:120]}")
    return failed


def test_there_are_enough_mutations():
    assert len(MUTATIONS) >= 18


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_mutation_is_caught(name, source):
    broken = copy.deepcopy(source)
    MUTATIONS[name](broken)
    assert broken != source, f"{name} changed nothing"
    assert failing_checks(broken), f"every check passes on the template with mutation {name}"


def test_rust_consts_reads_modules_and_skips_tests(tmp_path):
    rs = tmp_path / "m.rs"
    rs.write_text(
        'pub const TOP: &str = "top";\n'
        "pub mod names {\n"
        '    /// doc with a { brace\n'
        '    pub const A: &str = "Alpha"; // trailing {\n'
        '    pub const B: &\'static str = "Beta";\n'
        "    pub const ALL: &[&str] = &[\n        A,\n        B,\n    ];\n"
        "}\n"
        'pub const AFTER: &str = "after";\n'
        "#[cfg(test)]\nmod tests {\n    pub const T: &str = \"no\";\n}\n")
    assert rust_consts(str(rs)) == {"TOP": "top", "names::A": "Alpha", "names::B": "Beta", "AFTER": "after"}
    assert rust_list(str(rs), "names") == ["Alpha", "Beta"]


def test_cognito_example():
    t = sam_expand.load(COGNITO)
    (_, rs), = resources(t, "AWS::Cognito::UserPoolResourceServer").items()
    assert props(rs)["Identifier"] == "customer-api"
    assert {s["ScopeName"] for s in props(rs)["Scopes"]} == {"read", "write", "admin"}
    assert resources(t, "AWS::Cognito::UserPoolDomain")
    assert props(one(t, "AWS::Cognito::UserPool")[1])["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is True
    clients = {props(c)["ClientName"]: props(c) for c in resources(t, "AWS::Cognito::UserPoolClient").values()}
    assert set(clients) == {"order-processing", "reporting", "partner-acme"}
    assert set(clients["order-processing"]["AllowedOAuthScopes"]) == {"customer-api/read", "customer-api/write", "customer-api/admin"}
    assert clients["reporting"]["AllowedOAuthScopes"] == ["customer-api/read"]
    for c in clients.values():
        assert c["AllowedOAuthFlows"] == ["client_credentials"] and c["GenerateSecret"] is True
        assert c["AccessTokenValidity"] and c["TokenValidityUnits"]["AccessToken"] == "minutes"


def test_samconfig_overrides_are_template_parameters():
    import tomllib

    with open(os.path.join(HERE, "..", "samconfig.toml"), "rb") as f:
        cfg = tomllib.load(f)
    params = sam_expand.load(TEMPLATE)["Parameters"]
    deploy = cfg["default"]["deploy"]["parameters"]
    assert deploy["template_file"] == "template.yaml" and "CAPABILITY_IAM" in deploy["capabilities"]
    given = dict(o.split("=", 1) for o in deploy["parameter_overrides"])
    assert set(given) <= set(params), f"unknown parameters: {set(given) - set(params)}"
    required = {k for k, v in params.items() if "Default" not in v}
    assert required <= set(given), f"samconfig misses required parameters: {required - set(given)}"
    for key, value in given.items():
        pattern = params[key].get("AllowedPattern")
        if pattern:
            assert re.fullmatch(pattern, value), f"{key}={value} does not match {pattern}"
        if "AllowedValues" in params[key]:
            assert value in [str(v) for v in params[key]["AllowedValues"]], f"{key}={value}"
        if params[key]["Type"] == "Number":
            assert int(value) >= params[key].get("MinValue", 0), f"{key}={value}"
    # The example production configuration reserves concurrency for both functions and turns WAF on.
    assert int(given["AuthorizerReservedConcurrency"]) > 0 and int(given["BrokerReservedConcurrency"]) > 0
    assert given["PartnerWafEnabled"] == "true"
