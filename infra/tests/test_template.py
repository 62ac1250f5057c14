"""Offline assertions on infra/template.yaml (and infra/cognito-example.yaml).

Every promise the SAM template makes about security is checked twice: on the template as written (parsed with
cfn-lint's decoder, which understands !Ref/!Sub/!If) and on the plain CloudFormation that aws-sam-translator expands
it to, which is what CloudFormation actually deploys.

Each check is a plain function taking (source, expanded) and raising AssertionError. `test_<check>` runs it on the
real template; `test_mutation_is_caught` runs it on a deliberately broken copy (one realistic mistake per check) and
requires it to fail, so no check can silently pass on everything.

    .venv-cfnlint/bin/python -m pytest infra/tests -q
"""

import copy
import json
import os
import re
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import sam_expand  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATE = os.path.join(HERE, "..", "template.yaml")
COGNITO = os.path.join(HERE, "..", "cognito-example.yaml")

TOKEN_PATH = "/oauth2/token"

# The environment contract with the Rust functions (authorizer/src/config.rs, the broker's config).
AUTHORIZER_ENV = {
    "POLICY_FILE", "TRUSTSTORE_URI", "TRUSTSTORE_VERSION", "CRL_URI", "TRUST_REFRESH_SECONDS",
    "DECISION_CACHE_TTL_SECONDS", "JWKS_REFETCH_COOLDOWN_SECONDS", "LOG_LEVEL", "CALLER_HASH_KEY", "METRICS_NAMESPACE",
}
BROKER_ENV = {
    "POLICY_FILE", "QUOTA_TABLE", "SSM_PREFIX", "CREDENTIALS_TTL_SECONDS", "CREDENTIALS_MAX_STALE_SECONDS",
    "UPSTREAM_CONNECT_TIMEOUT_MS", "UPSTREAM_TIMEOUT_MS", "BREAKER_FAILURE_THRESHOLD", "BREAKER_OPEN_SECONDS",
    "METRICS_NAMESPACE", "CALLER_HASH_KEY", "LOG_LEVEL",
}

# Access-log variables that would write a secret or a body: headers (Authorization), the API key value, the
# certificate PEM, request/response bodies or overrides.
FORBIDDEN_LOG_PATTERNS = [
    r"body", r"authorization", r"requestheader", r"\$input", r"identity\.apikey\b", r"clientcert",
    r"requestoverride", r"responseoverride", r"\$context\.authorizer\.claims", r"password", r"secret", r"token\b",
]


# ---------------------------------------------------------------------------------------------------------------------
# helpers
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


def api_body(exp):
    _, api = one(exp, "AWS::ApiGateway::RestApi")
    body = props(api).get("Body")
    assert isinstance(body, dict), "the RestApi must carry its OpenAPI body inline"
    return body


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
    # No other policy resource may widen the role.
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


def function_of(exp, logical_id):
    res = exp["Resources"][logical_id]
    assert res["Type"] == "AWS::Lambda::Function"
    return props(res)


# ---------------------------------------------------------------------------------------------------------------------
# checks: each takes (source template, expanded template) and raises AssertionError
# ---------------------------------------------------------------------------------------------------------------------
def check_only_post_token(src, exp):
    # As written: one SAM API whose body has one path with one method, and no function Events that would make SAM
    # add implicit APIs or methods.
    _, api = one(src, "AWS::Serverless::Api")
    paths = props(api)["DefinitionBody"]["paths"]
    assert list(paths) == [TOKEN_PATH], f"paths: {list(paths)}"
    assert list(paths[TOKEN_PATH]) == ["post"], f"methods: {list(paths[TOKEN_PATH])}"
    for name, fn in resources(src, "AWS::Serverless::Function").items():
        assert not props(fn).get("Events"), f"{name} has Events: SAM would create more API methods"
    # As deployed: one RestApi, no separately declared methods/resources, same single operation.
    body = api_body(exp)
    assert list(body["paths"]) == [TOKEN_PATH]
    assert list(body["paths"][TOKEN_PATH]) == ["post"]
    for kind in ("AWS::ApiGateway::Method", "AWS::ApiGateway::Resource", "AWS::Serverless::HttpApi", "AWS::ApiGatewayV2::Api"):
        assert not resources(exp, kind), f"unexpected {kind}"
    integ = body["paths"][TOKEN_PATH]["post"]["x-amazon-apigateway-integration"]
    assert integ["type"] == "aws_proxy" and integ["httpMethod"] == "POST"
    assert "${BrokerFunction.Arn}" in sub_string(integ["uri"]), "the integration must target the broker"


def check_request_authorizer_safe_cache(src, exp):
    body = api_body(exp)
    post = body["paths"][TOKEN_PATH]["post"]
    schemes = body["components"]["securitySchemes"]
    authorizers = {k: v for k, v in schemes.items() if "x-amazon-apigateway-authorizer" in v}
    assert list(authorizers) == ["CallerAuthorizer"], f"authorizers: {list(authorizers)}"
    # Every variant of the method's security (RequireUsagePlanKey on or off) requires the authorizer.
    for sec in branches(post["security"]):
        names = {n for req in sec for n in req}
        assert "CallerAuthorizer" in names, f"security without the authorizer: {sec}"
        assert names <= {"CallerAuthorizer", "api_key"}, f"unexpected security: {sec}"
    scheme = authorizers["CallerAuthorizer"]
    assert scheme["x-amazon-apigateway-authtype"] == "custom"
    authz = scheme["x-amazon-apigateway-authorizer"]
    assert authz["type"] == "request", "must be a REQUEST authorizer"
    assert "${AuthorizerFunction.Arn}" in sub_string(authz["authorizerUri"])
    # Safe cache: API Gateway keys cached decisions on identity sources only. The certificate cannot be an identity
    # source, and an Authorization identity source would 401 every mTLS caller, so the gateway cache must be off.
    ttl = authz.get("authorizerResultTtlInSeconds")
    assert ttl == 0, f"authorizerResultTtlInSeconds must be 0 (API Gateway defaults to 300 when absent), got {ttl}"
    assert not authz.get("identitySource"), "no identity source: it would be a cache key and 401 mTLS callers"
    # No other authorizer declared anywhere.
    assert not resources(exp, "AWS::ApiGateway::Authorizer")


def check_execute_api_disabled(src, exp):
    _, api = one(src, "AWS::Serverless::Api")
    assert props(api).get("DisableExecuteApiEndpoint") is True
    _, rest = one(exp, "AWS::ApiGateway::RestApi")
    via_prop = props(rest).get("DisableExecuteApiEndpoint")
    via_body = api_body(exp).get("x-amazon-apigateway-endpoint-configuration", {}).get("disableExecuteApiEndpoint")
    assert via_body is True or via_prop is True, "execute-api endpoint not disabled in the deployed RestApi"
    assert via_prop in (None, True) and via_body in (None, True), "conflicting execute-api settings"


def check_mtls_domain(src, exp):
    domains = resources(exp, "AWS::ApiGateway::DomainName")
    mtls = {k: v for k, v in domains.items() if "MutualTlsAuthentication" in props(v)}
    assert len(mtls) == 1, f"exactly one mTLS domain expected, found {sorted(mtls)}"
    name, dom = next(iter(mtls.items()))
    p = props(dom)
    assert p["DomainName"] == {"Ref": "MtlsDomainName"}
    assert p["RegionalCertificateArn"] == {"Ref": "MtlsCertificateArn"}
    assert p["MutualTlsAuthentication"]["TruststoreUri"] == {"Ref": "TruststoreUri"}
    assert p["MutualTlsAuthentication"]["TruststoreVersion"] == {"Ref": "TruststoreVersion"}
    # The version is mandatory whenever the URI is given (the authorizer pins the same version).
    rule = exp["Rules"]["TruststoreVersionPinned"]
    assert "TruststoreVersion" in json.dumps(rule["Assertions"])
    # The authorizer reads exactly what the domain trusts.
    env = function_of(exp, "AuthorizerFunction")["Environment"]["Variables"]
    assert {"Ref": "TruststoreUri"} in branches(env["TRUSTSTORE_URI"])
    assert {"Ref": "TruststoreVersion"} in branches(env["TRUSTSTORE_VERSION"])
    # Two regional domains, both mapped to the one stage of the one API; only the mTLS one has a truststore.
    assert len(domains) == 2, f"two custom domains expected, found {sorted(domains)}"
    partner = [k for k in domains if k != name][0]
    assert props(domains[partner])["DomainName"] == {"Ref": "PartnerDomainName"}
    stage_name, _ = one(exp, "AWS::ApiGateway::Stage")
    rest_name, _ = one(exp, "AWS::ApiGateway::RestApi")
    mapped = {}
    for m in resources(exp, "AWS::ApiGateway::BasePathMapping").values():
        mp = props(m)
        assert mp["RestApiId"] == {"Ref": rest_name} and mp["Stage"] == {"Ref": stage_name}
        assert not mp.get("BasePath"), "the token path must be /oauth2/token on both domains"
        mapped[mp["DomainName"]["Ref"]] = True
    assert set(mapped) == set(domains), f"mapped domains {sorted(mapped)} != declared {sorted(domains)}"
    for d in domains.values():
        assert props(d)["EndpointConfiguration"]["Types"] == ["REGIONAL"]


def check_tls_1_2(src, exp):
    domains = resources(exp, "AWS::ApiGateway::DomainName")
    assert domains
    for name, d in domains.items():
        assert props(d).get("SecurityPolicy") == "TLS_1_2", f"{name} must enforce TLS 1.2"


def check_logging(src, exp):
    _, stage = one(exp, "AWS::ApiGateway::Stage")
    p = props(stage)
    settings = p.get("MethodSettings")
    assert settings, "MethodSettings missing"
    for s in settings:
        assert s.get("DataTraceEnabled") is False, "data trace (full request/response logging) must be off"
        assert s.get("LoggingLevel", "OFF") in ("OFF", "ERROR")
        assert s.get("CachingEnabled", False) is False
    assert any(s.get("ResourcePath") == "/*" and s.get("HttpMethod") == "*" for s in settings), "no stage-wide setting"
    als = p["AccessLogSetting"]
    assert als["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]}
    fmt = als["Format"]
    assert isinstance(fmt, str)
    fields = json.loads(fmt)  # JSON, one object per request
    assert "requestId" in fields and "status" in fields
    for key, value in fields.items():
        for pat in FORBIDDEN_LOG_PATTERNS:
            assert not re.search(pat, f"{key} {value}", re.I), f"access log field {key}={value} matches {pat}"


def check_throttling(src, exp):
    _, stage = one(exp, "AWS::ApiGateway::Stage")
    s = [m for m in props(stage)["MethodSettings"] if m.get("ResourcePath") == "/*"][0]
    assert s["ThrottlingRateLimit"] == {"Ref": "ThrottlingRateLimit"}
    assert s["ThrottlingBurstLimit"] == {"Ref": "ThrottlingBurstLimit"}


def check_invoke_permissions(src, exp):
    rest_name, _ = one(exp, "AWS::ApiGateway::RestApi")
    perms = resources(exp, "AWS::Lambda::Permission")
    by_fn = {}
    for name, perm in perms.items():
        p = props(perm)
        assert p["Principal"] == "apigateway.amazonaws.com", f"{name}: principal {p['Principal']}"
        arn = sub_string(p.get("SourceArn"))
        assert arn, f"{name} has no SourceArn: any API in any account could invoke the function"
        prefix = "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${" + rest_name + "}/"
        assert arn.startswith(prefix), f"{name}: SourceArn {arn} is not scoped to this API"
        fn = p["FunctionName"]
        fn_name = fn["Fn::GetAtt"][0] if "Fn::GetAtt" in fn else fn["Ref"]
        by_fn.setdefault(fn_name, []).append(arn[len(prefix):])
    assert by_fn == {"BrokerFunction": ["*/POST/oauth2/token"], "AuthorizerFunction": ["authorizers/*"]}, by_fn


def check_broker_role(src, exp):
    fn = function_of(exp, "BrokerFunction")
    assert fn["Role"] == {"Fn::GetAtt": ["BrokerRole", "Arn"]}
    stmts = role_statements(exp, "BrokerRole")
    grants = allowed(stmts)
    ssm_arn = "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter${SsmPrefix}/*"
    seen = set()
    for action, resource, stmt in grants:
        assert "*" not in action, f"wildcard action {action}"
        assert resource != "*", f"{action} on every resource"
        service = action.split(":")[0]
        seen.add(service)
        if service == "ssm":
            assert action == "ssm:GetParameter", f"broker may only read single parameters, not {action}"
            assert sub_string(resource) == ssm_arn, f"ssm on {resource}"
        elif service == "kms":
            assert action == "kms:Decrypt", action
            assert resource == {"Ref": "SsmKmsKeyArn"}, f"kms on {resource}"
            cond = stmt.get("Condition", {})
            assert sub_string(cond["StringEquals"]["kms:ViaService"]) == "ssm.${AWS::Region}.amazonaws.com"
        elif service == "dynamodb":
            # Counter updates (also inside TransactWriteItems) and the Retry-After read: no scans, no deletes.
            assert action in {"dynamodb:UpdateItem", "dynamodb:GetItem"}, action
            assert resource == {"Fn::GetAtt": ["QuotaTable", "Arn"]}, f"dynamodb on {resource}"
        elif service == "logs":
            assert action in {"logs:CreateLogStream", "logs:PutLogEvents"}
            assert resource == {"Fn::GetAtt": ["BrokerLogGroup", "Arn"]}
        else:
            raise AssertionError(f"broker role grants {action}")
    assert {"ssm", "kms", "dynamodb"} <= seen, f"broker role lacks a needed grant: {seen}"
    env = fn["Environment"]["Variables"]
    assert env["SSM_PREFIX"] == {"Ref": "SsmPrefix"} and env["QUOTA_TABLE"] == {"Ref": "QuotaTable"}


def check_authorizer_role(src, exp):
    fn = function_of(exp, "AuthorizerFunction")
    assert fn["Role"] == {"Fn::GetAtt": ["AuthorizerRole", "Arn"]}
    grants = allowed(role_statements(exp, "AuthorizerRole"))
    objects = set()
    for action, resource, _ in grants:
        service = action.split(":")[0]
        if service == "s3":
            assert action in {"s3:GetObject", "s3:GetObjectVersion"}, f"authorizer may only read objects, not {action}"
            assert isinstance(resource, dict) and isinstance(resource.get("Fn::Sub"), list), f"s3 on {resource}"
            tmpl, vars_ = resource["Fn::Sub"]
            assert tmpl == "arn:${AWS::Partition}:s3:::${Object}", tmpl
            # Object = the bucket/key part of the configured s3:// URI, nothing broader.
            split = vars_["Object"]["Fn::Select"]
            assert split[0] == 1 and split[1]["Fn::Split"][0] == "s3://"
            objects.add(split[1]["Fn::Split"][1]["Ref"])
        elif service == "logs":
            assert action in {"logs:CreateLogStream", "logs:PutLogEvents"}
            assert resource == {"Fn::GetAtt": ["AuthorizerLogGroup", "Arn"]}
        else:
            raise AssertionError(f"authorizer role grants {action}")
    assert objects == {"TruststoreUri", "CrlUri"}, f"authorizer reads {objects}"


def check_quota_table(src, exp):
    _, table = one(exp, "AWS::DynamoDB::Table")
    p = props(table)
    assert p["BillingMode"] == "PAY_PER_REQUEST"
    assert p["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    assert p["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert p["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert p["SSESpecification"]["SSEEnabled"] is True


def check_usage_plan(src, exp):
    rest_name, rest = one(exp, "AWS::ApiGateway::RestApi")
    assert props(rest).get("ApiKeySourceType") == "AUTHORIZER"
    assert api_body(exp).get("x-amazon-apigateway-api-key-source", "AUTHORIZER") == "AUTHORIZER"
    stage_name, _ = one(exp, "AWS::ApiGateway::Stage")
    plans = resources(exp, "AWS::ApiGateway::UsagePlan")
    assert plans, "no usage plan"
    for name, plan in plans.items():
        stages = props(plan)["ApiStages"]
        assert {"ApiId": {"Ref": rest_name}, "Stage": {"Ref": stage_name}} in stages, f"{name} not on the stage"
        assert props(plan).get("Throttle"), f"{name} has no throttle"
    # An API key requirement, when switched on, must be the api_key scheme (satisfied by the authorizer).
    schemes = api_body(exp)["components"]["securitySchemes"]
    assert schemes["api_key"]["type"] == "apiKey"


def check_gateway_responses(src, exp):
    responses = api_body(exp)["x-amazon-apigateway-gateway-responses"]
    expected = {"UNAUTHORIZED": 401, "ACCESS_DENIED": 403, "THROTTLED": 429, "QUOTA_EXCEEDED": 429, "DEFAULT_5XX": None}
    for rtype, status in expected.items():
        assert rtype in responses, f"no gateway response for {rtype}"
        r = responses[rtype]
        if status is not None:
            # The extension's statusCode is a string (x-amazon-apigateway-gateway-responses.gatewayResponse).
            assert r["statusCode"] == str(status), f"{rtype}: {r.get('statusCode')!r}"
        body = json.loads(r["responseTemplates"]["application/json"])
        assert re.fullmatch(r"[a-z_]+", body["error"]), f"{rtype}: error {body['error']}"
        assert body["error_description"] and "$context.error" not in json.dumps(body)
        assert r["responseParameters"]["gatewayresponse.header.Cache-Control"] == "'no-store'"
    assert json.loads(responses["UNAUTHORIZED"]["responseTemplates"]["application/json"])["error"] == "invalid_client"
    assert json.loads(responses["DEFAULT_5XX"]["responseTemplates"]["application/json"])["error"] == "server_error"
    for rtype in ("THROTTLED", "QUOTA_EXCEEDED"):
        assert "gatewayresponse.header.Retry-After" in responses[rtype]["responseParameters"]


def check_functions(src, exp):
    for name, env_contract in (("AuthorizerFunction", AUTHORIZER_ENV), ("BrokerFunction", BROKER_ENV)):
        fn = function_of(exp, name)
        assert fn["Runtime"] == "provided.al2023" and fn["Architectures"] == ["arm64"] and fn["Handler"] == "bootstrap"
        env = set(fn["Environment"]["Variables"])
        assert env <= env_contract, f"{name}: unknown variables {env - env_contract}"
        assert {"POLICY_FILE", "LOG_LEVEL", "METRICS_NAMESPACE"} <= env
        assert fn["Environment"]["Variables"]["POLICY_FILE"] == {"Ref": "PolicyFile"}
        group = fn["LoggingConfig"]["LogGroup"]["Ref"]
        assert props(exp["Resources"][group])["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    assert src["Parameters"]["PolicyFile"]["Default"] == "/var/task/policy.yaml"


def check_truststore_bucket(src, exp):
    _, bucket = one(exp, "AWS::S3::Bucket")
    p = props(bucket)
    assert p["VersioningConfiguration"]["Status"] == "Enabled"
    assert all(p["PublicAccessBlockConfiguration"][k] is True for k in
               ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"))
    _, policy = one(exp, "AWS::S3::BucketPolicy")
    stmts = props(policy)["PolicyDocument"]["Statement"]
    assert any(s["Effect"] == "Deny" and s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"
               for s in stmts), "bucket must deny non-TLS access"


def check_alarms(src, exp):
    alarms = resources(exp, "AWS::CloudWatch::Alarm")
    metrics = set()
    for a in alarms.values():
        p = props(a)
        for arm in branches(p.get("AlarmActions", [])):
            assert is_no_value(arm) or arm == [{"Ref": "AlarmTopicArn"}]
        if "MetricName" in p:
            metrics.add(json.dumps(p["MetricName"]))
        for m in p.get("Metrics", []):
            if "MetricStat" in m:
                metrics.add(json.dumps(m["MetricStat"]["Metric"]["MetricName"]))
    emf = exp["Mappings"]["Emf"]["Metric"]
    for wanted in ("UpstreamErrors", "UpstreamInvalidClient", "AuthorizerErrors", "QuotaExhausted", "GatewayThrottles",
                   "MissingAuthorizerContext", "TokenLifetimeExceeded"):
        assert json.dumps({"Fn::FindInMap": ["Emf", "Metric", wanted]}) in metrics, f"no alarm on {wanted}"
        assert emf[wanted] == wanted
    assert '"5XXError"' in metrics and '"Errors"' in metrics and '"Throttles"' in metrics


def alarm_metrics(alarm):
    """(namespace, metric name, dimensions) of every metric an alarm reads: its one metric, or each MetricStat."""
    p = props(alarm)
    if "MetricName" in p:
        yield p.get("Namespace"), p["MetricName"], p.get("Dimensions", [])
    for m in p.get("Metrics", []):
        if "MetricStat" in m:
            metric = m["MetricStat"]["Metric"]
            yield metric.get("Namespace"), metric["MetricName"], metric.get("Dimensions", [])


def check_authorizer_errors_alarm(src, exp):
    """The authorizer alarm reads only the authorizer's own EMF AuthorizerErrors (its Service-only series), never the
    function's AWS/Lambda Errors: API Gateway answers 401 only when the authorizer fails with "Unauthorized", so every
    request without valid credentials is a Lambda error and the alarm would fire on unauthenticated traffic."""
    emf = lambda *path: {"Fn::FindInMap": ["Emf", *path]}  # noqa: E731
    alarm = exp["Resources"]["AuthorizerErrorsAlarm"]
    assert list(alarm_metrics(alarm)) == [(
        {"Ref": "MetricsNamespace"},
        emf("Metric", "AuthorizerErrors"),
        [{"Name": emf("Dimension", "Name"), "Value": emf("Dimension", "Authorizer")}],
    )], f"AuthorizerErrorsAlarm reads {list(alarm_metrics(alarm))}"
    authorizer = {"Name": "FunctionName", "Value": {"Ref": "AuthorizerFunction"}}
    for name, a in resources(exp, "AWS::CloudWatch::Alarm").items():
        for namespace, metric, dims in alarm_metrics(a):
            raw_errors = namespace == "AWS/Lambda" and metric == "Errors" and authorizer in dims
            assert not raw_errors, f"{name} reads the authorizer's Lambda Errors, which count every 401"


def check_outputs(src, exp):
    outs = exp["Outputs"]
    assert sub_string(outs["MtlsTokenEndpoint"]["Value"]) == "https://${MtlsDomainName}/oauth2/token"
    assert sub_string(outs["PartnerTokenEndpoint"]["Value"]) == "https://${PartnerDomainName}/oauth2/token"


CHECKS = {f.__name__[len("check_"):]: f for f in [
    check_only_post_token, check_request_authorizer_safe_cache, check_execute_api_disabled, check_mtls_domain,
    check_tls_1_2, check_logging, check_throttling, check_invoke_permissions, check_broker_role,
    check_authorizer_role, check_quota_table, check_usage_plan, check_gateway_responses, check_functions,
    check_truststore_bucket, check_alarms, check_authorizer_errors_alarm, check_outputs,
]}


# ---------------------------------------------------------------------------------------------------------------------
# mutations: one realistic mistake per check; the check must reject it
# ---------------------------------------------------------------------------------------------------------------------
def _api(t):
    return t["Resources"]["TokenApi"]["Properties"]


def _authz(t):
    return _api(t)["DefinitionBody"]["components"]["securitySchemes"]["CallerAuthorizer"]["x-amazon-apigateway-authorizer"]


def _add_get(t):
    _api(t)["DefinitionBody"]["paths"][TOKEN_PATH]["get"] = copy.deepcopy(_api(t)["DefinitionBody"]["paths"][TOKEN_PATH]["post"])


def _cache_on_header(t):
    _authz(t)["authorizerResultTtlInSeconds"] = 300
    _authz(t)["identitySource"] = "method.request.header.X-Caller"


def _enable_execute_api(t):
    _api(t)["DisableExecuteApiEndpoint"] = False
    _api(t)["DefinitionBody"]["x-amazon-apigateway-endpoint-configuration"]["disableExecuteApiEndpoint"] = False


def _unpin_truststore(t):
    del t["Resources"]["MtlsDomain"]["Properties"]["MutualTlsAuthentication"]["TruststoreVersion"]


def _tls_1_0(t):
    t["Resources"]["PartnerDomain"]["Properties"]["SecurityPolicy"] = "TLS_1_0"


def _log_authorization(t):
    fmt = _api(t)["AccessLogSetting"]["Format"]
    _api(t)["AccessLogSetting"]["Format"] = fmt[:-1] + ',"auth":"$context.requestHeader.Authorization"}'
    _api(t)["MethodSettings"][0]["DataTraceEnabled"] = True


def _drop_throttle(t):
    del _api(t)["MethodSettings"][0]["ThrottlingRateLimit"]


def _unscoped_permission(t):
    del t["Resources"]["BrokerInvokePermission"]["Properties"]["SourceArn"]


def _broker_reads_all_ssm(t):
    doc = [p for p in t["Resources"]["BrokerRole"]["Properties"]["Policies"] if p.get("PolicyName") == "cognito-credentials"][0]
    doc["PolicyDocument"]["Statement"][0]["Resource"] = {"Fn::Sub": "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/*"}


def _authorizer_reads_bucket(t):
    t["Resources"]["AuthorizerRole"]["Properties"]["Policies"].append({
        "PolicyName": "bucket", "PolicyDocument": {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": {"Fn::Sub": "${TruststoreBucket.Arn}/*"}}]}})


def _no_pitr(t):
    t["Resources"]["QuotaTable"]["Properties"]["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] = False


def _header_key_source(t):
    _api(t)["ApiKeySourceType"] = "HEADER"


def _plain_403(t):
    del _api(t)["DefinitionBody"]["x-amazon-apigateway-gateway-responses"]["ACCESS_DENIED"]


def _x86(t):
    t["Globals"]["Function"]["Architectures"] = ["x86_64"]


def _public_bucket(t):
    t["Resources"]["TruststoreBucket"]["Properties"]["PublicAccessBlockConfiguration"]["BlockPublicPolicy"] = False


def _no_invalid_client_alarm(t):
    del t["Resources"]["UpstreamInvalidClientAlarm"]


def _authorizer_alarm_on_lambda_errors(t):
    """The alarm as it once was: the EMF metric plus the function's Lambda Errors, i.e. plus every 401."""
    p = t["Resources"]["AuthorizerErrorsAlarm"]["Properties"]
    emf = {k: p.pop(k) for k in ("Namespace", "MetricName", "Dimensions")}
    p.pop("Statistic")
    p.pop("Period")
    p["Metrics"] = [
        {"Id": "emf", "ReturnData": False, "MetricStat": {"Metric": emf, "Period": 60, "Stat": "Sum"}},
        {"Id": "lambda", "ReturnData": False, "MetricStat": {"Metric": {
            "Namespace": "AWS/Lambda", "MetricName": "Errors",
            "Dimensions": [{"Name": "FunctionName", "Value": {"Ref": "AuthorizerFunction"}}]}, "Period": 60, "Stat": "Sum"}},
        {"Id": "total", "Expression": "FILL(emf, 0) + FILL(lambda, 0)", "ReturnData": True},
    ]


def _no_partner_output(t):
    del t["Outputs"]["PartnerTokenEndpoint"]


MUTATIONS = {
    "only_post_token": _add_get,
    "request_authorizer_safe_cache": _cache_on_header,
    "execute_api_disabled": _enable_execute_api,
    "mtls_domain": _unpin_truststore,
    "tls_1_2": _tls_1_0,
    "logging": _log_authorization,
    "throttling": _drop_throttle,
    "invoke_permissions": _unscoped_permission,
    "broker_role": _broker_reads_all_ssm,
    "authorizer_role": _authorizer_reads_bucket,
    "quota_table": _no_pitr,
    "usage_plan": _header_key_source,
    "gateway_responses": _plain_403,
    "functions": _x86,
    "truststore_bucket": _public_bucket,
    "alarms": _no_invalid_client_alarm,
    "authorizer_errors_alarm": _authorizer_alarm_on_lambda_errors,
    "outputs": _no_partner_output,
}


# ---------------------------------------------------------------------------------------------------------------------
# tests
# ---------------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def source():
    return sam_expand.load(TEMPLATE)


@pytest.fixture(scope="module")
def expanded(source):
    return sam_expand.expand(source)


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_template(name, source, expanded):
    CHECKS[name](source, expanded)


def test_every_check_has_a_mutation():
    assert set(MUTATIONS) == set(CHECKS)


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_mutation_is_caught(name, source):
    broken = copy.deepcopy(source)
    MUTATIONS[name](broken)
    # A missing key is as much a rejection as a failed assert (the check looked for a setting that is gone).
    with pytest.raises((AssertionError, LookupError)):
        CHECKS[name](broken, sam_expand.expand(broken))


def test_cognito_example():
    t = sam_expand.load(COGNITO)
    (_, rs), = resources(t, "AWS::Cognito::UserPoolResourceServer").items()
    assert props(rs)["Identifier"] == "customer-api"
    assert {s["ScopeName"] for s in props(rs)["Scopes"]} == {"read", "write", "admin"}
    assert resources(t, "AWS::Cognito::UserPoolDomain")
    assert props(one(t, "AWS::Cognito::UserPool")[1])["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is True
    clients = {props(c)["ClientName"]: props(c) for c in resources(t, "AWS::Cognito::UserPoolClient").values()}
    assert set(clients) == {"order-processing", "reporting"}
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
