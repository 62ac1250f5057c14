"""Helpers shared by the template checks: navigating a (source or expanded) template, and reading the names the Rust
functions emit straight from their source, so the template and its tests never carry a second copy of a metric or
dimension name that could drift from the code.
"""

import json
import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
TEMPLATE = os.path.join(REPO, "infra", "template.yaml")
COGNITO = os.path.join(REPO, "infra", "cognito-example.yaml")

TOKEN_PATH = "/oauth2/token"

# Rust sources holding the metric contract.
AUTHORIZER_METRICS_RS = os.path.join(REPO, "authorizer", "src", "metrics.rs")
BROKER_METRICS_RS = os.path.join(REPO, "broker", "src", "metrics.rs")
TELEMETRY_RS = os.path.join(REPO, "shared", "src", "telemetry", "mod.rs")
ENV_RS = os.path.join(REPO, "shared", "src", "env.rs")


# ---------------------------------------------------------------------------------------------------------------------
# Rust constants
# ---------------------------------------------------------------------------------------------------------------------
_STRING = re.compile(r'"(?:\\.|[^"\\])*"')
_MOD_OPEN = re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*\{")
_STR_CONST = re.compile(r'^\s*pub\s+const\s+(\w+)\s*:\s*&(?:\'static\s+)?str\s*=\s*"((?:\\.|[^"\\])*)"\s*;')
_LIST_CONST = re.compile(r"pub\s+const\s+(\w+)\s*:\s*&\[\s*&(?:'static\s+)?str\s*\]\s*=\s*&\[(.*?)\]\s*;", re.S)


def _modules_by_line(text):
    """For each line, the inline module path it sits in ("" at the top, "names", "outer::inner")."""
    stack, depth, paths = [], 0, []
    for raw in text.splitlines():
        line = _STRING.sub('""', raw.split("//")[0])
        paths.append("::".join(name for name, _ in stack))
        m = _MOD_OPEN.match(line)
        if m:
            stack.append((m.group(1), depth))
        depth += line.count("{") - line.count("}")
        while stack and depth <= stack[-1][1]:
            stack.pop()
    return paths


def rust_consts(path):
    """Every `pub const NAME: &str = "value";` of a Rust file, keyed by its module-qualified name (`names::GRANTS`,
    `SERVICE`). Test modules are skipped: their constants are not the contract."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    out = {}
    for line, module in zip(text.splitlines(), _modules_by_line(text)):
        if module.split("::")[0] == "tests":
            continue
        m = _STR_CONST.match(line)
        if m:
            out[f"{module}::{m.group(1)}" if module else m.group(1)] = m.group(2)
    return out


def rust_list(path, module):
    """The values of `pub const ALL: &[&str] = &[A, B, ...];` in `module` of a Rust file, resolved through the
    string constants of the same module."""
    consts = rust_consts(path)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    lines = text.splitlines()
    mods = _modules_by_line(text)
    for m in _LIST_CONST.finditer(text):
        line_no = text.count("\n", 0, m.start())
        if m.group(1) != "ALL" or mods[line_no] != module:
            continue
        items = [i.strip() for i in m.group(2).split(",") if i.strip()]
        values = []
        for item in items:
            key = f"{module}::{item}" if module else item
            assert key in consts, f"{path}: {module}::ALL names {item}, which is not a string constant of {module}"
            values.append(consts[key])
        return values
    raise AssertionError(f"{path}: no `pub const ALL: &[&str]` in module {module!r} ({len(lines)} lines read)")


def const(path, name):
    consts = rust_consts(path)
    assert name in consts, f"{os.path.relpath(path, REPO)} has no `pub const {name}: &str` (have: {sorted(consts)})"
    return consts[name]


# ---------------------------------------------------------------------------------------------------------------------
# template navigation
# ---------------------------------------------------------------------------------------------------------------------
def resources(tpl, rtype):
    return {k: v for k, v in tpl["Resources"].items() if v["Type"] == rtype}


def one(tpl, rtype):
    found = resources(tpl, rtype)
    assert len(found) == 1, f"expected exactly one {rtype}, found {sorted(found)}"
    return next(iter(found.items()))


def props(res):
    return res.get("Properties", {})


def branches(node):
    """All values a node can take: both arms of Fn::If (recursively), else the node itself."""
    if isinstance(node, dict) and set(node) == {"Fn::If"}:
        _, a, b = node["Fn::If"]
        return branches(a) + branches(b)
    return [node]


def is_no_value(node):
    return node == {"Ref": "AWS::NoValue"}


def sub_string(node):
    """The template string of a Fn::Sub (short or long form), or the node if it is a plain string."""
    if isinstance(node, str):
        return node
    if isinstance(node, dict) and "Fn::Sub" in node:
        v = node["Fn::Sub"]
        return v if isinstance(v, str) else v[0]
    return None


def as_list(x):
    return x if isinstance(x, list) else [x]


def find_in_map(tpl, node):
    """The value of a literal or of a Fn::FindInMap with literal keys, else the node unchanged."""
    if isinstance(node, dict) and set(node) == {"Fn::FindInMap"}:
        m, k1, k2 = node["Fn::FindInMap"]
        return tpl["Mappings"][m][k1][k2]
    return node


def api_body(exp):
    _, api = one(exp, "AWS::ApiGateway::RestApi")
    body = props(api).get("Body")
    assert isinstance(body, dict), "the RestApi must carry its OpenAPI body inline"
    return body


def function_of(exp, logical_id):
    res = exp["Resources"][logical_id]
    assert res["Type"] == "AWS::Lambda::Function"
    return props(res)


IAM_POLICY_TYPES = ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::IAM::RolePolicy", "AWS::IAM::UserPolicy",
                    "AWS::IAM::GroupPolicy")


def iam_statements(exp):
    """(resource name, statement) of every IAM statement in the stack: roles' inline policies and policy resources,
    both arms of every Fn::If."""
    for name, res in exp["Resources"].items():
        p = props(res)
        if res["Type"] == "AWS::IAM::Role":
            docs = [arm["PolicyDocument"] for pol in p.get("Policies", []) for arm in branches(pol) if not is_no_value(arm)]
        elif res["Type"] in IAM_POLICY_TYPES:
            docs = [p["PolicyDocument"]]
        else:
            continue
        for doc in docs:
            for stmt in as_list(doc["Statement"]):
                for arm in branches(stmt):
                    if not is_no_value(arm):
                        yield name, arm


def role_statements(tpl, role_name):
    role = tpl["Resources"][role_name]
    assert role["Type"] == "AWS::IAM::Role"
    p = props(role)
    assert not p.get("ManagedPolicyArns"), f"{role_name} must not attach managed policies"
    stmts = []
    for pol in p.get("Policies", []):
        for arm in branches(pol):
            if is_no_value(arm):
                continue
            stmts += as_list(arm["PolicyDocument"]["Statement"])
    for kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::IAM::RolePolicy"):
        for name, pol in resources(tpl, kind).items():
            refs = json.dumps(props(pol).get("Roles", [])) + json.dumps(props(pol).get("RoleName", ""))
            assert role_name not in refs, f"{name} adds permissions to {role_name}"
    return stmts


def allowed(stmts):
    for s in stmts:
        assert s.get("Effect") == "Allow", "execution roles use Allow statements only"
        assert "NotAction" not in s and "NotResource" not in s
    return [(a, r, s) for s in stmts for a in as_list(s["Action"]) for r in as_list(s["Resource"])]


def stages(exp):
    """{logical id: properties} of the API's stages, and the logical id of SAM's (mTLS) stage."""
    found = {k: props(v) for k, v in resources(exp, "AWS::ApiGateway::Stage").items()}
    sam = [k for k, p in found.items() if p.get("StageName") == {"Ref": "StageName"}]
    assert len(sam) == 1, f"exactly one stage named by StageName expected: {found}"
    return found, sam[0]


def partner_stage(exp):
    """The logical id of the partner domain's stage (the one not named by StageName)."""
    found, mtls = stages(exp)
    others = [k for k in found if k != mtls]
    assert len(others) == 1, f"one partner stage expected besides {mtls}: {sorted(found)}"
    return others[0]


def access_log_fields(fmt_node):
    """The access-log format as a dict (its ${AWS::StackName} left as written)."""
    fmt = sub_string(fmt_node)
    assert isinstance(fmt, str), f"access log format is not a string or Fn::Sub: {fmt_node}"
    return json.loads(fmt)


def alarm_metrics(alarm):
    """(namespace, metric name, dimensions, stat) of every metric an alarm reads: its one metric, or each MetricStat."""
    p = props(alarm)
    if "MetricName" in p:
        yield p.get("Namespace"), p["MetricName"], p.get("Dimensions", []), p.get("Statistic")
    for m in p.get("Metrics", []):
        if "MetricStat" in m:
            metric = m["MetricStat"]["Metric"]
            yield metric.get("Namespace"), metric["MetricName"], metric.get("Dimensions", []), m["MetricStat"]["Stat"]
