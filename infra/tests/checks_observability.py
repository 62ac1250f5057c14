"""Checks on what tells an operator that something is wrong: the metric contract with the Rust code, the alarms, the
access-log metric filters and the dashboard.

Metric and dimension names are never written here: they are read from the Rust sources (tplutil.rust_consts), and
the Rust identifiers below say which constant an alarm must read.
"""

import json
import os
import re

from tplutil import (AUTHORIZER_METRICS_RS, BROKER_METRICS_RS, ENV_RS, REPO, TELEMETRY_RS, access_log_fields, alarm_metrics,
                     branches, const, find_in_map, is_no_value, props, resources, rust_consts, rust_list, stages,
                     sub_string)

# Which Rust constant (file, identifier) each alarm reads, with its Service; None = not a function metric.
A, B = AUTHORIZER_METRICS_RS, BROKER_METRICS_RS
ERROR_RS = os.path.join(REPO, "broker", "src", "error.rs")
EMF_ALARMS = {
    "UpstreamErrorsAlarm": (B, "names::UPSTREAM_ERRORS"),
    "UpstreamInvalidClientAlarm": (B, "names::INVALID_CLIENT_ALARM"),
    "QuotaDenialsAlarm": (B, "names::QUOTA_EXHAUSTED"),
    "MissingAuthorizerContextAlarm": (B, "names::MISSING_CONTEXT_ALARM"),
    "TokenLifetimeAlarm": (B, "names::LIFETIME_ALARM"),
    "ForgedContextAlarm": (B, "names::FORGED_CONTEXT"),
    "FleetCacheDamagedAlarm": (B, "names::FLEET_DAMAGED"),
    "FleetCacheUnavailableAlarm": (B, "names::FLEET_UNAVAILABLE"),
    "AuthorizerErrorsAlarm": (A, "names::AUTHORIZER_ERRORS"),
    "TrustRefreshFailuresAlarm": (A, "names::TRUST_REFRESH_FAILURES"),
    "CrlNextUpdateWarningAlarm": (A, "names::CRL_SECONDS_TO_NEXT_UPDATE"),
    "CrlNextUpdatePageAlarm": (A, "names::CRL_SECONDS_TO_NEXT_UPDATE"),
    "TruststoreExpiryAlarm": (A, "names::TRUSTSTORE_SECONDS_TO_EXPIRY"),
    "JwksFetchFailuresAlarm": (A, "names::JWKS_FETCH_FAILURES"),
}
OTHER_ALARMS = {"Api5xxAlarm", "BrokerFunctionErrorsAlarm", "ThrottlesAlarm", "CrlGaugeMissingAlarm",
                "MtlsUnauthorizedRateAlarm"}


def _unique(consts, ident, path):
    hits = [v for k, v in consts.items() if k == ident or k.endswith("::" + ident)]
    assert len(hits) == 1, f"{path}: {len(hits)} string constants named {ident}"
    return hits[0]


def contract():
    """The names the functions emit, read from the Rust sources."""
    auth, broker, tel = rust_consts(A), rust_consts(B), rust_consts(TELEMETRY_RS)
    return {
        "namespace": const(ENV_RS, "DEFAULT_METRICS_NAMESPACE"),
        "dims": {
            "Service": _unique(tel, "SERVICE_DIMENSION", TELEMETRY_RS),
            "Stack": _unique(tel, "STACK_DIMENSION", TELEMETRY_RS),
            "Reason": _unique(auth, "REASON_DIMENSION", A),
            "Object": _unique(auth, "OBJECT_DIMENSION", A),
            "Issuer": _unique(auth, "ISSUER_DIMENSION", A),
        },
        "services": {A: auth["SERVICE"], B: broker["SERVICE"]},
        "metrics": {A: set(rust_list(A, "names")), B: set(rust_list(B, "names"))},
        "consts": {A: auth, B: broker},
    }


def quota_reason():
    """The `reason` the broker logs for a quota refusal (broker/src/error.rs, BrokerError::code)."""
    with open(ERROR_RS, encoding="utf-8") as f:
        m = re.search(r'BrokerError::QuotaExhausted\s*\{[^}]*\}\s*=>\s*"(\w+)"', f.read())
    assert m, "broker/src/error.rs: no code for BrokerError::QuotaExhausted"
    return m.group(1)


def _emf_dims(tpl, dims):
    """{dimension name: value} of an alarm metric, with FindInMap resolved (values stay intrinsic when not mapped)."""
    out = {}
    for d in dims:
        out[find_in_map(tpl, d["Name"])] = find_in_map(tpl, d["Value"])
    return out


def check_emf_contract(src, exp):
    c = contract()
    emf = src["Mappings"]["Emf"]
    for key, value in c["dims"].items():
        assert emf["Dimension"][key] == value, f"Emf.Dimension.{key} is {emf['Dimension'][key]}, the code says {value}"
    assert emf["Dimension"]["Authorizer"] == c["services"][A]
    assert emf["Dimension"]["Broker"] == c["services"][B]
    emitted = c["metrics"][A] | c["metrics"][B]
    for key, value in emf["Metric"].items():
        assert value in emitted, f"Emf.Metric.{key} = {value}: no function emits it (names::ALL)"
    derived = set(src["Mappings"]["AccessLog"]["Metric"].values())
    assert not derived & emitted, f"access-log metrics must not shadow function metrics: {derived & emitted}"
    assert src["Parameters"]["MetricsNamespace"]["Default"] == c["namespace"]


def check_alarms(src, exp):
    c = contract()
    alarms = resources(exp, "AWS::CloudWatch::Alarm")
    expected = set(EMF_ALARMS) | OTHER_ALARMS
    assert expected <= set(alarms), f"missing alarms: {sorted(expected - set(alarms))}"
    stack_dim = c["dims"]["Stack"]
    for name, alarm in alarms.items():
        p = props(alarm)
        for key in ("AlarmActions", "OKActions"):
            for arm in branches(p.get(key, [])):
                assert is_no_value(arm) or arm == [{"Ref": "AlarmTopicArn"}], f"{name}: {key} {arm}"
        assert "docs/runbooks/alarms.md#" + name.lower() in p["AlarmDescription"], f"{name}: no runbook link"
        for namespace, metric, dims, _ in alarm_metrics(alarm):
            metric = find_in_map(exp, metric)
            if namespace in ("AWS/Lambda", "AWS/ApiGateway"):
                continue
            # A function or access-log metric: this stack's namespace parameter and this stack's series only.
            assert namespace == {"Ref": "MetricsNamespace"}, f"{name}: namespace {namespace}"
            d = _emf_dims(exp, dims)
            assert d.get(stack_dim) == {"Ref": "AWS::StackName"}, f"{name} reads {metric} of every stack: {d}"
            if metric in c["metrics"][A] | c["metrics"][B]:
                assert set(d) == {c["dims"]["Service"], stack_dim}, f"{name}: dimensions {sorted(d)}"
    for name, (path, ident) in EMF_ALARMS.items():
        reads = list(alarm_metrics(alarms[name]))
        assert len(reads) == 1, f"{name} reads {reads}"
        _, metric, dims, _ = reads[0]
        assert find_in_map(exp, metric) == c["consts"][path][ident], f"{name}: {metric}"
        assert _emf_dims(exp, dims)[c["dims"]["Service"]] == c["services"][path], f"{name}: {dims}"


def check_authorizer_errors_alarm(src, exp):
    """The authorizer alarm reads only the authorizer's own EMF AuthorizerErrors, never the function's AWS/Lambda
    Errors: API Gateway answers 401 only when the authorizer fails with "Unauthorized", so every request without valid
    credentials is a Lambda error and such an alarm would fire on unauthenticated traffic."""
    authorizer = {"Name": "FunctionName", "Value": {"Ref": "AuthorizerFunction"}}
    for name, a in resources(exp, "AWS::CloudWatch::Alarm").items():
        for namespace, metric, dims, _ in alarm_metrics(a):
            raw_errors = namespace == "AWS/Lambda" and metric == "Errors" and authorizer in dims
            assert not raw_errors, f"{name} reads the authorizer's Lambda Errors, which count every 401"
    p = props(exp["Resources"]["AuthorizerErrorsAlarm"])
    assert p["Statistic"] == "Sum" and p["TreatMissingData"] == "notBreaching"


def _alarm(exp, name):
    a = exp["Resources"][name]
    return a, props(a)


def check_forged_context_alarm(src, exp):
    """One refused context MAC in one minute pages: no ordinary request produces one (API Gateway hands on only
    contexts the authorizer signed), so a single one is a direct invoke of the broker or a key disagreement, and
    waiting for more would let an attacker probe. The {Service, Stack} series counts every MAC reason."""
    _, p = _alarm(exp, "ForgedContextAlarm")
    assert (p["Statistic"], p["Period"], p["EvaluationPeriods"]) == ("Sum", 60, 1), p
    assert p.get("DatapointsToAlarm", 1) == 1, p
    assert p["Threshold"] == 1 and p["ComparisonOperator"] == "GreaterThanOrEqualToThreshold", p
    assert p["TreatMissingData"] == "notBreaching", p


def check_trust_alarms(src, exp):
    params = src["Parameters"]
    for name, threshold, cond in (("CrlNextUpdateWarningAlarm", "CrlWarningSeconds", "HasCrl"),
                                  ("CrlNextUpdatePageAlarm", "CrlPageSeconds", "HasCrl"),
                                  ("TruststoreExpiryAlarm", "TruststoreExpiryWarningSeconds", "HasTruststore")):
        a, p = _alarm(exp, name)
        assert a.get("Condition") == cond, f"{name}: condition {a.get('Condition')}"
        # A gauge: the worst instance counts, and below the threshold is the problem.
        assert p["Statistic"] == "Minimum", f"{name}: {p['Statistic']}"
        assert p["ComparisonOperator"] == "LessThanThreshold" and p["Threshold"] == {"Ref": threshold}, name
        # Idle stacks emit no gauge: keep the last state; CrlGaugeMissingAlarm watches a gauge that stops.
        assert p["TreatMissingData"] == "missing", f"{name}: TreatMissingData {p['TreatMissingData']}"
    assert params["CrlWarningSeconds"]["Default"] == 3 * 86400
    assert params["CrlPageSeconds"]["Default"] == 6 * 3600
    assert params["TruststoreExpiryWarningSeconds"]["Default"] == 30 * 86400
    _, p = _alarm(exp, "TrustRefreshFailuresAlarm")
    assert (p["Statistic"], p["Period"], p["EvaluationPeriods"], p["DatapointsToAlarm"]) == ("Sum", 60, 5, 3), p
    assert p["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert p["Threshold"] == {"Ref": "TrustRefreshFailuresAlarmThreshold"}
    assert params["TrustRefreshFailuresAlarmThreshold"]["Default"] == 1
    _, p = _alarm(exp, "JwksFetchFailuresAlarm")
    # Sustained: every period of the window, not one failed fetch.
    assert p["EvaluationPeriods"] >= 3 and p.get("DatapointsToAlarm", p["EvaluationPeriods"]) == p["EvaluationPeriods"], p
    assert p["Threshold"] == {"Ref": "JwksFetchFailuresAlarmThreshold"}
    a, p = _alarm(exp, "CrlGaugeMissingAlarm")
    assert a.get("Condition") == "HasCrl"
    c = contract()
    reads = {(find_in_map(exp, m), s) for _, m, _, s in alarm_metrics(a)}
    assert (c["consts"][A]["names::CRL_SECONDS_TO_NEXT_UPDATE"], "SampleCount") in reads, reads
    assert ("Invocations", "Sum") in reads, reads
    expr = [m["Expression"] for m in p["Metrics"] if m.get("ReturnData")]
    assert expr and "IF(" in expr[0], expr


def check_metric_filters(src, exp):
    """Access-log metrics: fields that exist in the log, this stack's Stack dimension, this stack's namespace."""
    found, _ = stages(exp)
    fields = access_log_fields(next(iter(found.values()))["AccessLogSetting"]["Format"])
    stack_dim = contract()["dims"]["Stack"]
    filters = resources(exp, "AWS::Logs::MetricFilter")
    names = set()
    for name, f in filters.items():
        p = props(f)
        assert p["LogGroupName"] == {"Ref": "ApiAccessLogGroup"}, name
        pattern = sub_string(p["FilterPattern"])
        used = set(re.findall(r"\$\.(\w+)", pattern))
        assert used and used <= set(fields), f"{name} filters on {used - set(fields)}, which the access log lacks"
        for t in p["MetricTransformations"]:
            assert t["MetricNamespace"] == {"Ref": "MetricsNamespace"}, name
            names.add(find_in_map(exp, t["MetricName"]))
            dims = {find_in_map(exp, d["Key"]): d["Value"] for d in t.get("Dimensions", [])}
            assert dims.get(stack_dim) == "$.stack", f"{name}: no Stack dimension from the log's stack field: {dims}"
    assert names == set(src["Mappings"]["AccessLog"]["Metric"].values()), names
    throttles = sub_string(filters["GatewayThrottlesMetricFilter"]["Properties"]["FilterPattern"])
    assert '"THROTTLED"' in throttles and '"QUOTA_EXCEEDED"' in throttles, throttles
    for name in ("MtlsRequestsMetricFilter", "MtlsUnauthorizedMetricFilter"):
        assert '$.domainName = "${MtlsDomainName}"' in sub_string(filters[name]["Properties"]["FilterPattern"]), name
    assert '$.status = "401"' in sub_string(filters["MtlsUnauthorizedMetricFilter"]["Properties"]["FilterPattern"])
    a, p = _alarm(exp, "MtlsUnauthorizedRateAlarm")
    assert a.get("Condition") == "HasTruststore" and p["Threshold"] == {"Ref": "MtlsUnauthorizedPercentAlarmThreshold"}


def _dashboard(exp):
    (_, dash), = resources(exp, "AWS::CloudWatch::Dashboard").items()
    body = sub_string(props(dash)["DashboardBody"])
    assert isinstance(body, str)
    # Parameters substituted as numbers (annotations) or inside strings; either way still JSON after this.
    numeric = {"CrlWarningSeconds", "CrlPageSeconds", "TruststoreExpiryWarningSeconds"}
    text = re.sub(r"\$\{([A-Za-z:]+)\}", lambda m: "1" if m.group(1) in numeric else "X" + m.group(1).replace(":", ""),
                  body)
    return body, json.loads(text)


def check_dashboard(src, exp):
    c = contract()
    body, dash = _dashboard(exp)
    emitted = c["metrics"][A] | c["metrics"][B]
    derived = set(src["Mappings"]["AccessLog"]["Metric"].values())
    named, searched, logs = set(), {}, []
    for w in dash["widgets"]:
        p = w["properties"]
        if w["type"] == "log":
            logs.append(p["query"])
        for m in p.get("metrics", []):
            if isinstance(m[0], dict):
                expr = m[0]["expression"]
                hit = re.search(r"SEARCH\('\{[^,]+,([^}]+)\} MetricName=\"(\w+)\"", expr)
                assert hit, f"unreadable expression {expr}"
                dims, metric = hit.group(1).split(","), hit.group(2)
                assert "Stack=\"XAWSStackName\"" in expr, f"SEARCH without this stack: {expr}"
                searched.setdefault(metric, set()).update(dims)
                named.add(metric)
                continue
            ns, metric, *rest = [x for x in m if not isinstance(x, dict)]
            named.add(metric)
            if ns == "AWS/ApiGateway":
                continue
            assert ns == "XMetricsNamespace", f"dashboard metric {metric} in namespace {ns}"
            pairs = dict(zip(rest[::2], rest[1::2]))
            assert pairs.get(c["dims"]["Stack"]) == "XAWSStackName", f"dashboard metric {metric} of every stack"
    unknown = {n for n in named if n not in emitted | derived | {"4XXError", "5XXError"}}
    assert not unknown, f"the dashboard names metrics nobody emits: {unknown}"
    wanted = {c["consts"][path][ident] for path, ident in (
        (B, "names::GRANTS"), (B, "names::DENIALS"), (B, "names::QUOTA_EXHAUSTED"), (B, "names::UPSTREAM_LATENCY"),
        (B, "names::UPSTREAM_ERRORS"), (B, "names::BREAKER_OPEN"), (B, "names::FORGED_CONTEXT"),
        (B, "names::CONTEXT_KEYS_UNAVAILABLE"), (B, "names::REUSE_HITS"), (B, "names::FLEET_HITS"),
        (B, "names::FLEET_UNAVAILABLE"), (B, "names::FLEET_WAITED_OUT"), (B, "names::FLEET_DAMAGED"),
        (A, "names::UNAUTHORIZED"),
        (A, "names::AUTHORIZER_ERRORS"), (A, "names::CRL_SECONDS_TO_NEXT_UPDATE"),
        (A, "names::TRUSTSTORE_SECONDS_TO_EXPIRY"), (A, "names::TRUST_REFRESH_FAILURES"),
        (A, "names::JWKS_FETCH_FAILURES"))} | derived | {"4XXError", "5XXError"}
    assert wanted <= named, f"the dashboard lacks {wanted - named}"
    d = c["dims"]
    for path, ident, dim in ((B, "names::DENIALS", d["Reason"]), (A, "names::UNAUTHORIZED", d["Reason"]),
                             (A, "names::AUTHORIZER_ERRORS", d["Reason"]), (A, "names::TRUST_REFRESH_FAILURES", d["Object"]),
                             (B, "names::FORGED_CONTEXT", d["Reason"]),
                             (A, "names::JWKS_FETCH_FAILURES", d["Issuer"])):
        metric = c["consts"][path][ident]
        assert dim in searched.get(metric, set()), f"the dashboard does not break {metric} down by {dim}"
    reason = quota_reason()
    assert any("/token-broker/XAWSStackName/broker" in q and reason in q and "by caller" in q for q in logs), logs
    assert "${CrlWarningSeconds}" in body and "${CrlPageSeconds}" in body


CHECKS = [
    check_emf_contract, check_alarms, check_authorizer_errors_alarm, check_forged_context_alarm, check_trust_alarms,
    check_metric_filters, check_dashboard,
]
