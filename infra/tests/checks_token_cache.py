"""Checks on the fleet token cache (docs/token-cache.md): the table and KMS key created with FleetTokenCacheEnabled,
what the broker may do with them and that nothing else in the stack may, how the broker is told about them, and the
two alarms. Names the broker uses (encryption-context pairs, key and TTL attributes, variables and their ranges) are
read from its Rust source, never copied.
"""

import json
import os
import re

from tplutil import (iam_statements, BROKER_METRICS_RS, REPO, alarm_metrics, allowed, as_list, branches, find_in_map, function_of,
                     is_no_value, props, resources, role_statements, rust_consts, sub_string)

PARAMETER = "FleetTokenCacheEnabled"
CONDITION = "HasFleetTokenCache"
TABLE, KEY, ALIAS = "TokenCacheTable", "TokenCacheKey", "TokenCacheKeyAlias"
DAMAGED_ALARM, UNAVAILABLE_ALARM = "FleetCacheDamagedAlarm", "FleetCacheUnavailableAlarm"
# Everything that exists only with the cache, and its type.
CONDITIONAL = {
    TABLE: "AWS::DynamoDB::Table", KEY: "AWS::KMS::Key", ALIAS: "AWS::KMS::Alias",
    DAMAGED_ALARM: "AWS::CloudWatch::Alarm", UNAVAILABLE_ALARM: "AWS::CloudWatch::Alarm",
}
OUTPUTS = {"TokenCacheTableName": {"Ref": TABLE}, "TokenCacheKeyArn": {"Fn::GetAtt": [KEY, "Arn"]}}
# The only resources that may name the table or the key (besides the outputs and the resources themselves).
REFERRERS = {"BrokerFunction", "BrokerRole", ALIAS}

SEALED_RS = os.path.join(REPO, "broker", "src", "fleet", "sealed.rs")
TABLE_RS = os.path.join(REPO, "broker", "src", "fleet", "table.rs")
CONFIG_RS = os.path.join(REPO, "broker", "src", "config.rs")
SHARED_AWS_RS = os.path.join(REPO, "shared", "src", "aws.rs")

ACCOUNT_ROOT = "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"
TABLE_ACTIONS = {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"}
KEY_ACTIONS = {"kms:GenerateDataKey", "kms:Decrypt"}
# The one AWS managed policy the stack attaches (SAM's, to the CodeDeploy role): no DynamoDB or KMS action in it.
ALLOWED_MANAGED_POLICIES = {"policy/service-role/AWSCodeDeployRoleForLambda"}


# ---------------------------------------------------------------------------------------------------------------------
# the contract, from the Rust source
# ---------------------------------------------------------------------------------------------------------------------
def _code(path):
    with open(path, encoding="utf-8") as f:
        return f.read().split("#[cfg(test)]")[0]


def context_contract():
    """(purpose key, purpose value, every context key the broker may send, the keys it always sends)."""
    c = rust_consts(SEALED_RS)
    keys = {c["PURPOSE_KEY"], c["APP_CLIENT_KEY"], c["SCOPES_KEY"], c["CERT_THUMBPRINT_KEY"]}
    return c["PURPOSE_KEY"], c["PURPOSE"], keys, {c["PURPOSE_KEY"], c["APP_CLIENT_KEY"], c["SCOPES_KEY"]}


def variables():
    """Every TOKEN_CACHE_* variable the broker reads, and {variable: (min, max)} of the timed ones."""
    code = _code(CONFIG_RS)
    names = set(re.findall(r'"(TOKEN_CACHE_[A-Z_]+)"', code))
    ranges = {}
    for m in re.finditer(r'env\.(?:millis|seconds)\(\s*"(TOKEN_CACHE_[A-Z_]+)"\s*,[^;]*?([\d_]+)\s*\.\.=\s*([\d_]+)\s*,?\s*\)',
                         code):
        ranges[m.group(1)] = (int(m.group(2).replace("_", "")), int(m.group(3).replace("_", "")))
    assert {"TOKEN_CACHE_TABLE", "TOKEN_CACHE_KMS_KEY"} <= names, f"{CONFIG_RS}: no TOKEN_CACHE_TABLE/KMS_KEY: {names}"
    assert set(ranges) == names - {"TOKEN_CACHE_TABLE", "TOKEN_CACHE_KMS_KEY"}, f"{CONFIG_RS}: ranges {ranges}"
    return names, ranges


def _millis(text, what, path):
    """The milliseconds of a `Duration::from_millis(N)` at the start of text."""
    m = re.match(r"\s*Duration::from_millis\(\s*([\d_]+)\s*\)", text)
    assert m, f"{path}: {what} is no longer a Duration::from_millis literal; update this check"
    return int(m.group(1).replace("_", ""))


def fetch_reserve_ms(env):
    """The time a fleet-cache lookup leaves before the Lambda deadline for the fetch that may follow it, as
    broker/src/config.rs computes it: UPSTREAM_TIMEOUT_MS (one Cognito attempt) + AWS_OPERATION_TIMEOUT_MS (the quota
    charge) + a constant (the answer), each variable as the broker function's environment sets it, or else the
    broker's default (AWS_OPERATION_TIMEOUT_MS: tb_shared::aws::DEFAULT_OPERATION_TIMEOUT)."""
    code = _code(CONFIG_RS)
    m = re.search(r"let\s+fetch\s*=\s*config\.upstream\.attempt_timeout\s*\+\s*config\.aws_operation_timeout\s*\+"
                  r"(\s*Duration::from_millis\([^)]*\))\s*;", code)
    assert m and re.search(r"\.fetch_reserve\s*=\s*fetch\s*;", code), \
        f"{CONFIG_RS}: the fetch reserve is no longer UPSTREAM_TIMEOUT_MS + AWS_OPERATION_TIMEOUT_MS + a constant"
    answer = _millis(m.group(1), "the fetch reserve's constant", CONFIG_RS)
    assert re.search(r'"AWS_OPERATION_TIMEOUT_MS"\s*,\s*ms\(tb_shared::aws::DEFAULT_OPERATION_TIMEOUT\)', code), \
        f"{CONFIG_RS}: AWS_OPERATION_TIMEOUT_MS no longer defaults to tb_shared::aws::DEFAULT_OPERATION_TIMEOUT"
    with open(SHARED_AWS_RS, encoding="utf-8") as f:
        d = re.search(r"pub\s+const\s+DEFAULT_OPERATION_TIMEOUT\s*:\s*Duration\s*=(.*?);", f.read(), re.S)
    assert d, f"{SHARED_AWS_RS}: no DEFAULT_OPERATION_TIMEOUT"
    aws_op = env.get("AWS_OPERATION_TIMEOUT_MS", str(_millis(d.group(1), "DEFAULT_OPERATION_TIMEOUT", SHARED_AWS_RS)))
    attempt = env.get("UPSTREAM_TIMEOUT_MS")
    for var, value in (("UPSTREAM_TIMEOUT_MS", attempt), ("AWS_OPERATION_TIMEOUT_MS", aws_op)):
        assert isinstance(value, str) and value.isdigit(), f"BrokerFunction {var}: {value} (a stated number of ms)"
    return int(attempt) + int(aws_op) + answer


# ---------------------------------------------------------------------------------------------------------------------
# references
# ---------------------------------------------------------------------------------------------------------------------
def _refs(node, guarded=False):
    """(name, guarded) for every Ref, GetAtt and Fn::Sub variable in node; guarded = inside the first arm of an
    Fn::If on CONDITION."""
    if isinstance(node, list):
        for v in node:
            yield from _refs(v, guarded)
    elif isinstance(node, dict):
        if set(node) == {"Fn::If"}:
            cond, a, b = node["Fn::If"]
            yield from _refs(a, guarded or cond == CONDITION)
            yield from _refs(b, guarded)
            return
        if set(node) == {"Ref"} and isinstance(node["Ref"], str):
            yield node["Ref"].split(".")[0], guarded
            return
        if set(node) == {"Fn::GetAtt"}:
            v = node["Fn::GetAtt"]
            yield (v[0] if isinstance(v, list) else v.split(".")[0]), guarded
            return
        if "Fn::Sub" in node:
            tmpl = sub_string(node)
            if isinstance(tmpl, str):
                for name in re.findall(r"\$\{([^}!][^}]*)\}", tmpl):
                    yield name.split(".")[0], guarded
            if isinstance(node["Fn::Sub"], list):
                yield from _refs(node["Fn::Sub"][1:], guarded)
            return
        for v in node.values():
            yield from _refs(v, guarded)


def names_cache(node):
    """Whether node refers to the table, the key or its alias anywhere."""
    return any(name in (TABLE, KEY, ALIAS) for name, _ in _refs(node))


def is_token_cache_grant(action, resource, stmt):
    """A statement on the cache's table or key (check_token_cache_broker_grants checks it in full)."""
    return names_cache(stmt.get("Resource")) or names_cache(stmt.get("NotResource"))


# ---------------------------------------------------------------------------------------------------------------------
# checks
# ---------------------------------------------------------------------------------------------------------------------
def check_token_cache_is_optional_and_off_by_default(src, exp):
    """One parameter turns the cache on, off by default; everything of the cache exists only under its condition, and
    every resource that always exists names the table or key only inside Fn::If on that condition (so turning it off
    leaves no dangling reference, and turning it on adds nothing anywhere else)."""
    p = src["Parameters"][PARAMETER]
    assert p["Type"] == "String" and p["Default"] == "false", p
    assert sorted(p["AllowedValues"]) == ["false", "true"], p
    assert src["Conditions"][CONDITION] == {"Fn::Equals": [{"Ref": PARAMETER}, "true"]}, src["Conditions"][CONDITION]
    for tpl in (src, exp):
        for name, rtype in CONDITIONAL.items():
            res = tpl["Resources"][name]
            assert res["Type"] == rtype and res.get("Condition") == CONDITION, f"{name}: {res['Type']} {res.get('Condition')}"
        for name, res in tpl["Resources"].items():
            if res.get("Condition") == CONDITION:
                continue
            loose = {n for n, guarded in _refs(res) if n in CONDITIONAL and not guarded}
            loose |= {d for d in as_list(res.get("DependsOn", [])) if d in CONDITIONAL}
            assert not loose, f"{name} names {sorted(loose)} outside Fn::If [{CONDITION}, ...]"
    for name, value in OUTPUTS.items():
        out = src["Outputs"][name]
        assert out.get("Condition") == CONDITION and out["Value"] == value, f"output {name}: {out}"
    for name, out in src["Outputs"].items():
        if out.get("Condition") != CONDITION:
            loose = {n for n, guarded in _refs(out) if n in CONDITIONAL and not guarded}
            assert not loose, f"output {name} names {sorted(loose)} without the condition"


def check_token_cache_table(src, exp):
    """On-demand, `pk` (S) only, TTL on `expires_at` (both names read from broker/src/fleet/table.rs), encrypted at
    rest. No backup (point-in-time recovery would keep copies of tokens past their deadline), no stream or index
    (each would be one more copy and one more reader), no resource policy (only the broker's role may read it), and
    no deletion protection (turning the cache off deletes it; it holds nothing that cannot be fetched again)."""
    c = rust_consts(TABLE_RS)
    pk, ttl = c["KEY_ATTR"], c["TTL_ATTR"]
    tables = resources(exp, "AWS::DynamoDB::Table")
    assert set(tables) == {"QuotaTable", TABLE}, f"tables: {sorted(tables)}"
    res = tables[TABLE]
    p = props(res)
    assert p["BillingMode"] == "PAY_PER_REQUEST", p.get("BillingMode")
    assert p["KeySchema"] == [{"AttributeName": pk, "KeyType": "HASH"}], p["KeySchema"]
    assert p["AttributeDefinitions"] == [{"AttributeName": pk, "AttributeType": "S"}], p["AttributeDefinitions"]
    assert p["TimeToLiveSpecification"] == {"AttributeName": ttl, "Enabled": True}, p.get("TimeToLiveSpecification")
    assert p["SSESpecification"]["SSEEnabled"] is True, p.get("SSESpecification")
    pitr = p.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled", False)
    assert pitr is False, "point-in-time recovery on the token cache keeps copies of tokens past their deadline"
    for key in ("StreamSpecification", "KinesisStreamSpecification", "GlobalSecondaryIndexes", "LocalSecondaryIndexes",
                "ResourcePolicy", "ImportSourceSpecification"):
        assert key not in p, f"{TABLE} sets {key}"
    assert p.get("DeletionProtectionEnabled", False) is False, "deletion protection makes turning the cache off fail"
    assert res.get("DeletionPolicy") == "Delete" and res.get("UpdateReplacePolicy") == "Delete", res
    assert p.get("TableName") is None, "a fixed table name blocks replacement and a second stack in the account"


def check_token_cache_key(src, exp):
    """A symmetric encryption key, rotated by KMS, with the standard key policy only: the account administers it and
    IAM policies grant its use. No wildcard principal, no other account or service, no grant of its own. The alias
    points at it (the broker itself is given the key ARN: check_token_cache_env)."""
    res = exp["Resources"][KEY]
    p = props(res)
    assert p.get("KeySpec", "SYMMETRIC_DEFAULT") == "SYMMETRIC_DEFAULT", p.get("KeySpec")
    assert p.get("KeyUsage", "ENCRYPT_DECRYPT") == "ENCRYPT_DECRYPT", p.get("KeyUsage")
    assert p.get("EnableKeyRotation") is True, "the token cache key must rotate"
    assert p.get("Enabled", True) is True and p.get("MultiRegion", False) is False, p
    assert p.get("Origin", "AWS_KMS") == "AWS_KMS", p.get("Origin")
    assert isinstance(p.get("PendingWindowInDays"), int) and 7 <= p["PendingWindowInDays"] <= 30, p.get("PendingWindowInDays")
    stmts = as_list(p["KeyPolicy"]["Statement"])
    allows = [s for s in stmts if s["Effect"] == "Allow"]
    assert allows, "a key policy without an Allow for the account locks the key"
    for s in stmts:
        assert "NotPrincipal" not in s, s
        principal = s["Principal"]
        assert principal != "*" and isinstance(principal, dict) and set(principal) == {"AWS"}, f"key policy principal {principal}"
        for who in as_list(principal["AWS"]):
            assert who != "*", "wildcard principal in the token cache key's policy"
            if s["Effect"] == "Allow":
                assert sub_string(who) == ACCOUNT_ROOT, f"the key policy allows {who}, not only this account"
        assert "Condition" not in s or s["Effect"] == "Deny", f"a conditional Allow in the key policy: {s}"
    for kind in ("AWS::KMS::Grant", "AWS::KMS::ReplicaKey"):
        assert not resources(exp, kind), f"{kind} in the stack"
    alias = props(exp["Resources"][ALIAS])
    assert alias["TargetKeyId"] == {"Ref": KEY}, alias
    name = sub_string(alias["AliasName"])
    assert name.startswith("alias/") and not name.startswith("alias/aws/") and "${AWS::StackName}" in name, name


def check_token_cache_broker_grants(src, exp):
    """The broker's role may GetItem, PutItem and UpdateItem on the cache table and nothing else there (no Scan,
    Query, batch or delete), and GenerateDataKey and Decrypt with the cache key only under the cache's encryption
    context: `purpose` is the cache's, `app_client` and `scopes` are present, and no key beyond the four the broker
    uses may appear (a caller id in the context would be written to CloudTrail). The context names and the purpose
    are read from broker/src/fleet/sealed.rs."""
    purpose_key, purpose, all_keys, required = context_contract()
    stmts = [s for s in role_statements(exp, "BrokerRole") if is_token_cache_grant(None, None, s)]
    by_resource = {}
    for s in stmts:
        assert s["Effect"] == "Allow" and "NotAction" not in s and "NotResource" not in s, s
        res = as_list(s["Resource"])
        assert len(res) == 1, f"one resource per token cache statement: {res}"
        by_resource.setdefault(json.dumps(res[0], sort_keys=True), []).append(s)
    table = json.dumps({"Fn::GetAtt": [TABLE, "Arn"]}, sort_keys=True)
    key = json.dumps({"Fn::GetAtt": [KEY, "Arn"]}, sort_keys=True)
    assert set(by_resource) == {table, key}, f"token cache grants on {sorted(by_resource)}"
    (t,), (k,) = by_resource[table], by_resource[key]
    assert set(as_list(t["Action"])) == TABLE_ACTIONS, f"token table actions {t['Action']}"
    assert "Condition" not in t, t
    assert set(as_list(k["Action"])) == KEY_ACTIONS, f"token key actions {k['Action']}"
    cond = k.get("Condition", {})
    assert set(cond) == {"StringEquals", "ForAllValues:StringEquals", "Null"}, f"token key condition {cond}"
    assert cond["StringEquals"] == {f"kms:EncryptionContext:{purpose_key}": purpose}, cond["StringEquals"]
    listed = cond["ForAllValues:StringEquals"]
    assert set(listed) == {"kms:EncryptionContextKeys"}, listed
    assert sorted(as_list(listed["kms:EncryptionContextKeys"])) == sorted(all_keys), listed
    # ForAllValues holds for an empty set: the Null test keeps a request without any context out.
    null = {"kms:EncryptionContextKeys"} | {f"kms:EncryptionContext:{k}" for k in required - {purpose_key}}
    assert cond["Null"] == {n: "false" for n in null}, cond["Null"]
    # The same grant in the source, inside Fn::If on the condition (check_token_cache_is_optional_and_off_by_default
    # finds the reference; here: it is the role's own policy, not a separate one).
    pols = [p for p in props(src["Resources"]["BrokerRole"])["Policies"] if names_cache(p)]
    assert len(pols) == 1 and set(pols[0]) == {"Fn::If"} and pols[0]["Fn::If"][0] == CONDITION, pols
    assert is_no_value(pols[0]["Fn::If"][2]), pols


def _could_reach(action, resource):
    """Whether an allowed action on a resource pattern could reach a DynamoDB table or a KMS key it does not name."""
    service = action.split(":")[0].lower()
    if action == "*" or service not in ("dynamodb", "kms"):
        return action == "*"
    text = sub_string(resource) if not isinstance(resource, str) else resource
    if resource == "*" or (isinstance(text, str) and "*" in text):
        return True
    return False


def check_token_cache_no_other_access(src, exp):
    """Only the broker's role may touch the cache: no other role or policy of the stack names the table or the key,
    none may use DynamoDB or KMS on a wildcard resource, no managed policy beyond SAM's CodeDeploy one is attached,
    and no resource but the broker function, its role and the key's alias names them (no authorizer variable, no
    permission, no second consumer)."""
    for owner, stmt in iam_statements(exp):
        if owner == "BrokerRole" and is_token_cache_grant(None, None, stmt):
            continue  # check_token_cache_broker_grants
        assert not names_cache(stmt), f"{owner} has a statement on the token cache: {stmt}"
        if stmt.get("Effect") != "Allow":
            continue
        actions = as_list(stmt.get("Action", [])) or ["*"]  # NotAction allows everything else
        targets = as_list(stmt.get("Resource", [])) or ["*"]
        for action in actions:
            for resource in targets:
                assert not _could_reach(action, resource), f"{owner}: {action} on {resource} reaches the token cache"
    for name, role in resources(exp, "AWS::IAM::Role").items():
        for arn in props(role).get("ManagedPolicyArns", []):
            assert isinstance(arn, str) and re.sub(r"^arn:aws[a-z-]*:iam::aws:", "", arn) in ALLOWED_MANAGED_POLICIES, \
                f"{name} attaches {arn}"
    for tpl in (src, exp):
        referrers = {name for name, res in tpl["Resources"].items()
                     if name not in CONDITIONAL and any(n in (TABLE, KEY, ALIAS) for n, _ in _refs(res))}
        assert referrers <= REFERRERS, f"{sorted(referrers - REFERRERS)} name the token cache"
    assert not any(k.startswith("TOKEN_CACHE_") for k in function_of(exp, "AuthorizerFunction")["Environment"]["Variables"])


def check_token_cache_env(src, exp):
    """The broker gets the table and the key's ARN (Decrypt is pinned to the key it names; an alias can be pointed at
    another key) only with the cache, and the four times, each within the range the broker accepts (read from
    broker/src/config.rs, so a value it would refuse at cold start fails here). Then the times against each other
    and the function, as the broker uses them (broker/src/fleet/mod.rs):
    - a waiter outlasts a lease, so a crashed holder's lease ends while others still wait and one of them takes
      over, rather than every waiter fetching by itself;
    - a lease covers its holder's Cognito attempt at UPSTREAM_TIMEOUT_MS and the write after it (a data key from KMS
      and the PutItem, each within TOKEN_CACHE_TIMEOUT_MS), with what is left for the quota charge, so a holder that
      is merely slow is not taken over;
    - a lookup (reads, KMS, the lease, polling) ends at the Lambda deadline less the fetch reserve (fetch_reserve_ms:
      a quota charge, one Cognito attempt and the answer), so the wait is reachable only if the function's timeout
      less that reserve is at least the wait; otherwise every waiter is cut off early and fetches by itself."""
    names, ranges = variables()
    fn = function_of(exp, "BrokerFunction")
    env = fn["Environment"]["Variables"]
    noval = {"Ref": "AWS::NoValue"}
    assert env.get("TOKEN_CACHE_TABLE") == {"Fn::If": [CONDITION, {"Ref": TABLE}, noval]}, env.get("TOKEN_CACHE_TABLE")
    assert env.get("TOKEN_CACHE_KMS_KEY") == {"Fn::If": [CONDITION, {"Fn::GetAtt": [KEY, "Arn"]}, noval]}, \
        env.get("TOKEN_CACHE_KMS_KEY")
    values = {}
    for var, (low, high) in ranges.items():
        node = env.get(var)
        assert isinstance(node, dict) and set(node) == {"Fn::If"}, f"{var}: {node} (stated, and only with the cache)"
        cond, value, other = node["Fn::If"]
        assert cond == CONDITION and is_no_value(other), f"{var}: {node}"
        assert isinstance(value, str) and value.isdigit() and low <= int(value) <= high, \
            f"{var}={value}: the broker accepts {low}..{high}"
        values[var] = int(value)
    extra = {k for k in env if k.startswith("TOKEN_CACHE_")} - names
    assert not extra, f"variables the broker does not read: {extra}"
    lease, wait, op = values["TOKEN_CACHE_LEASE_MS"], values["TOKEN_CACHE_WAIT_MS"], values["TOKEN_CACHE_TIMEOUT_MS"]
    assert lease <= wait, f"waiters give up ({wait} ms) before a lease ends ({lease} ms)"
    reserve = fetch_reserve_ms(env)
    holder = int(env["UPSTREAM_TIMEOUT_MS"]) + 2 * op
    assert holder <= lease, f"a holder's Cognito attempt and write ({holder} ms) outlast its lease ({lease} ms)"
    left = fn["Timeout"] * 1000 - reserve
    assert left >= wait, (f"a lookup ends {reserve} ms before the {fn['Timeout']} s deadline, {left} ms in: "
                          f"the {wait} ms wait is never reached")


def check_token_cache_alarms(src, exp):
    """A damaged item (one that does not open for its key) is never something the broker writes: the first one raises
    its alarm. An unavailable cache is no outage (tokens are still issued): its alarm wants the failure sustained
    over every period of 15 minutes. Neither gates a release. Both read the broker's metrics (names from
    broker/src/metrics.rs; check_alarms checks namespace and dimensions)."""
    c = rust_consts(BROKER_METRICS_RS)
    for name, ident in ((DAMAGED_ALARM, "names::FLEET_DAMAGED"), (UNAVAILABLE_ALARM, "names::FLEET_UNAVAILABLE")):
        alarm = exp["Resources"][name]
        (_, metric, _, stat), = alarm_metrics(alarm)
        assert find_in_map(exp, metric) == c[ident] and stat == "Sum", f"{name}: {metric} {stat}"
        p = props(alarm)
        assert p["ComparisonOperator"] == "GreaterThanOrEqualToThreshold" and p["TreatMissingData"] == "notBreaching", p
    p = props(exp["Resources"][DAMAGED_ALARM])
    assert p["Threshold"] == 1 and p["EvaluationPeriods"] == 1 and p.get("DatapointsToAlarm", 1) == 1, p
    assert p["Period"] <= 300, p["Period"]
    p = props(exp["Resources"][UNAVAILABLE_ALARM])
    periods = p["EvaluationPeriods"]
    assert p.get("DatapointsToAlarm", periods) == periods and periods * p["Period"] >= 900, \
        f"{UNAVAILABLE_ALARM} must want a sustained failure, not one: {p}"
    for fn in ("AuthorizerFunction", "BrokerFunction"):
        gates = {a["Ref"] for a in props(src["Resources"][fn]).get("DeploymentPreference", {}).get("Alarms", [])}
        assert not gates & {DAMAGED_ALARM, UNAVAILABLE_ALARM}, f"{fn}: a fleet cache alarm gates releases"


CHECKS = [
    check_token_cache_is_optional_and_off_by_default, check_token_cache_table, check_token_cache_key,
    check_token_cache_broker_grants, check_token_cache_no_other_access, check_token_cache_env,
    check_token_cache_alarms,
]
