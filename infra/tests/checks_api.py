"""Checks on the request path: the one method, the authorizer, stages and domains, WAF, gateway responses, usage plans,
Lambda permissions. Each takes (source template, expanded template) and raises AssertionError (or LookupError when a
setting it looks for is gone)."""

import json
import re

from tplutil import (TOKEN_PATH, access_log_fields, api_body, branches, function_of, one, partner_stage, props, resources,
                     stages, sub_string)

# Access-log variables that would write a secret or a body: headers (Authorization), the API key value, the
# certificate PEM, request/response bodies or overrides.
FORBIDDEN_LOG_PATTERNS = [
    r"body", r"authorization", r"requestheader", r"\$input", r"identity\.apikey\b", r"clientcert",
    r"requestoverride", r"responseoverride", r"\$context\.authorizer\.claims", r"password", r"secret", r"token\b",
]

# RFC 6749 section 5.2 codes, plus the two section 4.1.2.1 codes the service uses for its own failures.
OAUTH_ERRORS = {"invalid_request", "invalid_client", "invalid_grant", "unauthorized_client", "unsupported_grant_type",
                "invalid_scope", "server_error", "temporarily_unavailable"}

# Every answer the gateway gives itself: status (None = the class default) and error code.
GATEWAY_RESPONSES = {
    "UNAUTHORIZED": ("401", "invalid_client"),
    "ACCESS_DENIED": ("403", "unauthorized_client"),
    "INVALID_API_KEY": ("403", "unauthorized_client"),
    "WAF_FILTERED": ("403", "unauthorized_client"),
    "THROTTLED": ("429", "temporarily_unavailable"),
    "QUOTA_EXCEEDED": ("429", "temporarily_unavailable"),
    "MISSING_AUTHENTICATION_TOKEN": ("404", "invalid_request"),
    "REQUEST_TOO_LARGE": ("413", "invalid_request"),
    "DEFAULT_4XX": (None, "invalid_request"),
    "INTEGRATION_TIMEOUT": ("504", "temporarily_unavailable"),
    "DEFAULT_5XX": (None, "server_error"),
}

BROKER_ALIAS = "BrokerFunctionAliaslive"
AUTHORIZER_ALIAS = "AuthorizerFunctionAliaslive"


def check_only_post_token(src, exp):
    _, api = one(src, "AWS::Serverless::Api")
    paths = props(api)["DefinitionBody"]["paths"]
    assert list(paths) == [TOKEN_PATH], f"paths: {list(paths)}"
    assert list(paths[TOKEN_PATH]) == ["post"], f"methods: {list(paths[TOKEN_PATH])}"
    for name, fn in resources(src, "AWS::Serverless::Function").items():
        assert not props(fn).get("Events"), f"{name} has Events: SAM would create more API methods"
    body = api_body(exp)
    assert list(body["paths"]) == [TOKEN_PATH]
    assert list(body["paths"][TOKEN_PATH]) == ["post"]
    for kind in ("AWS::ApiGateway::Method", "AWS::ApiGateway::Resource", "AWS::Serverless::HttpApi", "AWS::ApiGatewayV2::Api"):
        assert not resources(exp, kind), f"unexpected {kind}"
    integ = body["paths"][TOKEN_PATH]["post"]["x-amazon-apigateway-integration"]
    assert integ["type"] == "aws_proxy" and integ["httpMethod"] == "POST"
    # The live alias, which CodeDeploy shifts gradually; $LATEST would skip the canary.
    assert "/functions/${" + BROKER_ALIAS + "}/invocations" in sub_string(integ["uri"]), integ["uri"]


def check_request_authorizer_safe_cache(src, exp):
    body = api_body(exp)
    post = body["paths"][TOKEN_PATH]["post"]
    schemes = body["components"]["securitySchemes"]
    authorizers = {k: v for k, v in schemes.items() if "x-amazon-apigateway-authorizer" in v}
    assert list(authorizers) == ["CallerAuthorizer"], f"authorizers: {list(authorizers)}"
    for sec in branches(post["security"]):
        names = {n for req in sec for n in req}
        assert "CallerAuthorizer" in names, f"security without the authorizer: {sec}"
        assert names <= {"CallerAuthorizer", "api_key"}, f"unexpected security: {sec}"
    scheme = authorizers["CallerAuthorizer"]
    assert scheme["x-amazon-apigateway-authtype"] == "custom"
    authz = scheme["x-amazon-apigateway-authorizer"]
    assert authz["type"] == "request", "must be a REQUEST authorizer"
    assert "/functions/${" + AUTHORIZER_ALIAS + "}/invocations" in sub_string(authz["authorizerUri"])
    # API Gateway keys cached decisions on identity sources only; the certificate cannot be one, and Authorization
    # would 401 every mTLS caller, so the gateway cache must be off (docs/runbooks/caching.md).
    ttl = authz.get("authorizerResultTtlInSeconds")
    assert ttl == 0, f"authorizerResultTtlInSeconds must be 0 (API Gateway defaults to 300 when absent), got {ttl}"
    assert not authz.get("identitySource"), "no identity source: it would be a cache key and 401 mTLS callers"
    assert not resources(exp, "AWS::ApiGateway::Authorizer")


def check_execute_api_disabled(src, exp):
    _, api = one(src, "AWS::Serverless::Api")
    assert props(api).get("DisableExecuteApiEndpoint") is True
    _, rest = one(exp, "AWS::ApiGateway::RestApi")
    via_prop = props(rest).get("DisableExecuteApiEndpoint")
    via_body = api_body(exp).get("x-amazon-apigateway-endpoint-configuration", {}).get("disableExecuteApiEndpoint")
    assert via_body is True or via_prop is True, "execute-api endpoint not disabled in the deployed RestApi"
    assert via_prop in (None, True) and via_body in (None, True), "conflicting execute-api settings"
    # SAM names the Deployment after a hash of the unresolved body: without AlwaysDeploy a parameter-only change
    # (RequireUsagePlanKey switches the method's security through Fn::If) never reaches the stages.
    assert props(api).get("AlwaysDeploy") is True, "AlwaysDeploy must be true"


def check_mtls_domain(src, exp):
    domains = resources(exp, "AWS::ApiGateway::DomainName")
    mtls = {k: v for k, v in domains.items() if "MutualTlsAuthentication" in props(v)}
    assert list(mtls) == ["MtlsDomain"], f"exactly one mTLS domain (MtlsDomain) expected, found {sorted(mtls)}"
    p = props(mtls["MtlsDomain"])
    assert p["DomainName"] == {"Ref": "MtlsDomainName"}
    assert p["RegionalCertificateArn"] == {"Ref": "MtlsCertificateArn"}
    assert p["MutualTlsAuthentication"] == {"TruststoreUri": {"Ref": "TruststoreUri"},
                                            "TruststoreVersion": {"Ref": "TruststoreVersion"}}
    # The version is mandatory whenever the URI is given (the authorizer pins the same version).
    rule = exp["Rules"]["TruststoreVersionPinned"]
    assert rule["RuleCondition"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "TruststoreUri"}, ""]}]}, rule
    asserts = [a["Assert"] for a in rule["Assertions"]]
    assert asserts == [{"Fn::Not": [{"Fn::Equals": [{"Ref": "TruststoreVersion"}, ""]}]}], asserts
    env = function_of(exp, "AuthorizerFunction")["Environment"]["Variables"]
    assert {"Ref": "TruststoreUri"} in branches(env["TRUSTSTORE_URI"])
    assert {"Ref": "TruststoreVersion"} in branches(env["TRUSTSTORE_VERSION"])
    # The authorizer checks the CRLs the operator configured, which its role may read (check_authorizer_role).
    crl = [b for b in branches(env["CRL_URI"]) if b != {"Ref": "AWS::NoValue"}]
    assert crl == [{"Ref": "CrlUri"}], f"CRL_URI is {env['CRL_URI']}"
    assert sorted(domains) == ["MtlsDomain", "PartnerDomain"], sorted(domains)
    assert props(domains["PartnerDomain"])["DomainName"] == {"Ref": "PartnerDomainName"}
    for d in domains.values():
        assert props(d)["EndpointConfiguration"]["Types"] == ["REGIONAL"]


def check_separate_stages(src, exp):
    """Each domain has a stage of its own (one deployment), so the partner domain's traffic spends its own throttle."""
    rest_name, _ = one(exp, "AWS::ApiGateway::RestApi")
    found, mtls_stage = stages(exp)
    assert len(found) == 2, f"two stages expected: {sorted(found)}"
    partner = partner_stage(exp)
    mp, pp = found[mtls_stage], found[partner]
    assert pp["StageName"] == {"Ref": "PartnerStageName"}
    assert mp["RestApiId"] == pp["RestApiId"] == {"Ref": rest_name}
    assert mp["DeploymentId"] == pp["DeploymentId"], "both stages must serve the same deployment"
    for p, rate, burst in ((mp, "ThrottlingRateLimit", "ThrottlingBurstLimit"),
                           (pp, "PartnerThrottlingRateLimit", "PartnerThrottlingBurstLimit")):
        s = [m for m in p["MethodSettings"] if m.get("ResourcePath") == "/*" and m.get("HttpMethod") == "*"]
        assert len(s) == 1, f"{p['StageName']}: no stage-wide method setting"
        assert s[0]["ThrottlingRateLimit"] == {"Ref": rate}, s[0]
        assert s[0]["ThrottlingBurstLimit"] == {"Ref": burst}, s[0]
    rule = exp["Rules"]["SeparateStages"]["Assertions"][0]["Assert"]
    assert rule == {"Fn::Not": [{"Fn::Equals": [{"Ref": "StageName"}, {"Ref": "PartnerStageName"}]}]}, rule
    mapped = {}
    for m in resources(exp, "AWS::ApiGateway::BasePathMapping").values():
        p = props(m)
        assert p["RestApiId"] == {"Ref": rest_name}
        assert not p.get("BasePath"), "the token path must be /oauth2/token on both domains"
        mapped[p["DomainName"]["Ref"]] = p["Stage"]
    assert mapped == {"MtlsDomain": {"Ref": mtls_stage}, "PartnerDomain": {"Ref": partner}}, mapped
    for name, plan in resources(exp, "AWS::ApiGateway::UsagePlan").items():
        on = props(plan)["ApiStages"]
        for stage in (mtls_stage, partner):
            assert {"ApiId": {"Ref": rest_name}, "Stage": {"Ref": stage}} in on, f"{name} does not cover {stage}"
    assert src["Parameters"]["StageName"]["Default"] != src["Parameters"]["PartnerStageName"]["Default"]


def check_tls_policies(src, exp):
    domains = resources(exp, "AWS::ApiGateway::DomainName")
    mtls = props(domains["MtlsDomain"])
    # Mutual TLS is only allowed with the legacy policies; TLS_1_2 is the strictest of them.
    assert mtls.get("SecurityPolicy") == "TLS_1_2", f"mTLS domain: {mtls.get('SecurityPolicy')}"
    partner = props(domains["PartnerDomain"])
    policy = partner.get("SecurityPolicy", "")
    assert re.fullmatch(r"SecurityPolicy_TLS13_1_[23]_(PFS_)?(PQ_)?20\d\d_\d\d", policy), f"partner domain: {policy}"
    assert "PFS" in policy or "TLS13_1_3" in policy, f"partner policy without forward secrecy only: {policy}"
    assert partner.get("EndpointAccessMode") == "STRICT", "enhanced policies need EndpointAccessMode; STRICT checks SNI"


def check_logging(src, exp):
    found, _ = stages(exp)
    formats = []
    for name, p in found.items():
        settings = p.get("MethodSettings")
        assert settings, f"{name}: MethodSettings missing"
        for s in settings:
            assert s.get("DataTraceEnabled") is False, f"{name}: data trace (full request/response logging) must be off"
            assert s.get("LoggingLevel", "OFF") in ("OFF", "ERROR")
            assert s.get("CachingEnabled", False) is False
        assert p.get("TracingEnabled") is True, f"{name}: X-Ray tracing off"
        als = p["AccessLogSetting"]
        assert als["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]}, f"{name}: {als['DestinationArn']}"
        formats.append(als["Format"])
    assert all(f == formats[0] for f in formats), "both stages must write the same access-log format"
    fields = access_log_fields(formats[0])
    for wanted in ("requestId", "status", "domainName", "stage", "errorResponseType", "sourceIp"):
        assert wanted in fields, f"access log has no {wanted}"
    assert fields["stack"] == "${AWS::StackName}", "the metric filters' Stack dimension comes from this field"
    for key, value in fields.items():
        for pat in FORBIDDEN_LOG_PATTERNS:
            assert not re.search(pat, f"{key} {value}", re.I), f"access log field {key}={value} matches {pat}"


def check_execution_log_groups(src, exp):
    """API Gateway's execution-log groups are declared, so they get a retention (and the logs KMS key)."""
    found, mtls_stage = stages(exp)
    rest_name, _ = one(exp, "AWS::ApiGateway::RestApi")
    groups = {sub_string(props(g).get("LogGroupName")): props(g) for g in resources(exp, "AWS::Logs::LogGroup").values()}
    for name, p in found.items():
        stage_param = p["StageName"]["Ref"]
        group = groups.get("API-Gateway-Execution-Logs_${" + rest_name + "}/${" + stage_param + "}")
        assert group is not None, f"no execution log group for stage {name}: {sorted(map(str, groups))}"
        assert group.get("RetentionInDays") == {"Ref": "LogRetentionDays"}, f"{name}: retention {group.get('RetentionInDays')}"
        assert group.get("KmsKeyId") == {"Fn::If": ["HasLogsKmsKey", {"Ref": "LogsKmsKeyArn"}, {"Ref": "AWS::NoValue"}]}


def check_waf(src, exp):
    assert src["Conditions"]["HasPartnerWaf"] == {"Fn::Equals": [{"Ref": "PartnerWafEnabled"}, "true"]}
    (acl_name, acl), = resources(exp, "AWS::WAFv2::WebACL").items()
    assert acl.get("Condition") == "HasPartnerWaf"
    p = props(acl)
    assert p["Scope"] == "REGIONAL" and p["DefaultAction"] == {"Allow": {}}
    rules = {r["Name"]: r for r in p["Rules"]}
    managed = {r["Statement"]["ManagedRuleGroupStatement"]["Name"]: r for r in rules.values()
               if "ManagedRuleGroupStatement" in r["Statement"]}
    assert "AWSManagedRulesAmazonIpReputationList" in managed, f"managed rules: {sorted(managed)}"
    for name, r in managed.items():
        assert r["OverrideAction"] == {"None": {}}, f"{name} only counts: {r['OverrideAction']}"
    rate = [r for r in rules.values() if "RateBasedStatement" in r["Statement"]]
    assert len(rate) == 1, "exactly one per-IP rate rule expected"
    stmt = rate[0]["Statement"]["RateBasedStatement"]
    assert stmt["AggregateKeyType"] == "IP" and stmt["Limit"] == {"Ref": "PartnerWafRateLimit"}, stmt
    assert rate[0]["Action"] == {"Block": {}}, rate[0]["Action"]
    (_, assoc), = resources(exp, "AWS::WAFv2::WebACLAssociation").items()
    assert assoc.get("Condition") == "HasPartnerWaf"
    assert props(assoc)["WebACLArn"] == {"Fn::GetAtt": [acl_name, "Arn"]}
    arn = sub_string(props(assoc)["ResourceArn"])
    assert arn.endswith("/restapis/${TokenApi}/stages/${" + partner_stage(exp) + "}"), arn


def check_gateway_responses(src, exp):
    responses = api_body(exp)["x-amazon-apigateway-gateway-responses"]
    assert set(GATEWAY_RESPONSES) <= set(responses), f"missing gateway responses: {set(GATEWAY_RESPONSES) - set(responses)}"
    for rtype, r in responses.items():
        body = json.loads(r["responseTemplates"]["application/json"])
        assert body["error"] in OAUTH_ERRORS, f"{rtype}: error {body['error']} is not a token-endpoint code"
        assert body["error_description"] and "$context.error" not in json.dumps(body)
        assert body["request_id"] == "$context.requestId"
        assert r["responseParameters"]["gatewayresponse.header.Cache-Control"] == "'no-store'", rtype
        assert r["responseParameters"]["gatewayresponse.header.Pragma"] == "'no-cache'", rtype
        if rtype in GATEWAY_RESPONSES:
            status, code = GATEWAY_RESPONSES[rtype]
            assert r.get("statusCode") == status, f"{rtype}: status {r.get('statusCode')!r}"
            assert body["error"] == code, f"{rtype}: {body['error']} instead of {code}"
    www = responses["UNAUTHORIZED"]["responseParameters"].get("gatewayresponse.header.WWW-Authenticate", "")
    assert www.startswith("'Bearer "), f"401 without WWW-Authenticate: {www!r}"
    for rtype in ("THROTTLED", "QUOTA_EXCEEDED", "INTEGRATION_TIMEOUT"):
        assert "gatewayresponse.header.Retry-After" in responses[rtype]["responseParameters"], rtype


def check_usage_plan(src, exp):
    rest_name, rest = one(exp, "AWS::ApiGateway::RestApi")
    assert props(rest).get("ApiKeySourceType") == "AUTHORIZER"
    assert api_body(exp).get("x-amazon-apigateway-api-key-source", "AUTHORIZER") == "AUTHORIZER"
    plans = resources(exp, "AWS::ApiGateway::UsagePlan")
    assert plans, "no usage plan"
    for name, plan in plans.items():
        assert props(plan).get("Throttle"), f"{name} has no throttle"
    schemes = api_body(exp)["components"]["securitySchemes"]
    assert schemes["api_key"]["type"] == "apiKey"


def check_invoke_permissions(src, exp):
    rest_name, _ = one(exp, "AWS::ApiGateway::RestApi")
    by_fn = {}
    for name, perm in resources(exp, "AWS::Lambda::Permission").items():
        p = props(perm)
        assert p["Principal"] == "apigateway.amazonaws.com", f"{name}: principal {p['Principal']}"
        assert p.get("SourceAccount") == {"Ref": "AWS::AccountId"}, f"{name}: no SourceAccount"
        arn = sub_string(p.get("SourceArn"))
        assert arn, f"{name} has no SourceArn: any API in any account could invoke the function"
        prefix = "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${" + rest_name + "}/"
        assert arn.startswith(prefix), f"{name}: SourceArn {arn} is not scoped to this API"
        fn = p["FunctionName"]
        target = fn["Fn::GetAtt"][0] if "Fn::GetAtt" in fn else fn["Ref"]
        by_fn.setdefault(target, []).append(arn[len(prefix):])
    # The aliases API Gateway calls; "*" stage: both stages (and a stage added later) carry the one method.
    assert by_fn == {BROKER_ALIAS: ["*/POST/oauth2/token"], AUTHORIZER_ALIAS: ["authorizers/*"]}, by_fn


def check_outputs(src, exp):
    outs = exp["Outputs"]
    assert sub_string(outs["MtlsTokenEndpoint"]["Value"]) == "https://${MtlsDomainName}/oauth2/token"
    assert sub_string(outs["PartnerTokenEndpoint"]["Value"]) == "https://${PartnerDomainName}/oauth2/token"
    for key in ("TruststoreBucketName", "AccessLogGroupName", "MtlsStageName", "PartnerStageName", "DashboardUrl",
                "AuthorizerLiveAlias", "BrokerLiveAlias"):
        assert key in outs, f"output {key} missing"


CHECKS = [
    check_only_post_token, check_request_authorizer_safe_cache, check_execute_api_disabled, check_mtls_domain,
    check_separate_stages, check_tls_policies, check_logging, check_execution_log_groups, check_waf,
    check_gateway_responses, check_usage_plan, check_invoke_permissions, check_outputs,
]
