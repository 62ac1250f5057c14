"""Checks on the functions, their roles and releases, and the state they keep (quota table, truststore bucket)."""

import json

from checks_token_cache import is_token_cache_grant, variables as token_cache_variables
from tplutil import allowed, iam_statements, as_list, api_body, branches, function_of, is_no_value, one, props, resources, role_statements, sub_string, TOKEN_PATH

# The environment contract with the Rust functions (authorizer/src/config.rs, broker/src/config.rs).
AUTHORIZER_ENV = {
    "POLICY_FILE", "TRUSTSTORE_URI", "TRUSTSTORE_VERSION", "CRL_URI", "TRUST_REFRESH_SECONDS",
    "DECISION_CACHE_TTL_SECONDS", "JWKS_REFETCH_COOLDOWN_SECONDS", "LOG_LEVEL", "CALLER_HASH_KEY", "METRICS_NAMESPACE",
    "STACK_NAME", "CONTEXT_KEY_PARAMETER", "CONTEXT_KEYS_TTL_SECONDS", "CONTEXT_KEYS_MAX_STALE_SECONDS",
    "CONTEXT_MAC_TTL_SECONDS",
}
BROKER_ENV = {
    "POLICY_FILE", "QUOTA_TABLE", "SSM_PREFIX", "CREDENTIALS_TTL_SECONDS", "CREDENTIALS_MAX_STALE_SECONDS",
    "UPSTREAM_CONNECT_TIMEOUT_MS", "UPSTREAM_TIMEOUT_MS", "BREAKER_FAILURE_THRESHOLD", "BREAKER_OPEN_SECONDS",
    "METRICS_NAMESPACE", "CALLER_HASH_KEY", "LOG_LEVEL", "STACK_NAME", "CONTEXT_KEY_PARAMETER",
    "CONTEXT_KEYS_TTL_SECONDS", "CONTEXT_KEYS_MAX_STALE_SECONDS",
} | token_cache_variables()[0]
# The one parameter holding the context-MAC keys, as an ARN (the template's Fn::Sub string).
CONTEXT_KEY_ARN = "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter${ContextKeyParameterName}"
FUNCTIONS = ("AuthorizerFunction", "BrokerFunction")
RELEASE_ALARMS = {"Api5xxAlarm", "BrokerFunctionErrorsAlarm", "AuthorizerErrorsAlarm"}
XRAY = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}


def check_functions(src, exp):
    for name, env_contract in (("AuthorizerFunction", AUTHORIZER_ENV), ("BrokerFunction", BROKER_ENV)):
        fn = function_of(exp, name)
        assert fn["Runtime"] == "provided.al2023" and fn["Architectures"] == ["arm64"] and fn["Handler"] == "bootstrap"
        variables = fn["Environment"]["Variables"]
        env = set(variables)
        assert env <= env_contract, f"{name}: unknown variables {env - env_contract}"
        assert {"POLICY_FILE", "LOG_LEVEL", "METRICS_NAMESPACE", "STACK_NAME"} <= env, f"{name}: {sorted(env)}"
        assert variables["POLICY_FILE"] == {"Ref": "PolicyFile"}
        assert variables["METRICS_NAMESPACE"] == {"Ref": "MetricsNamespace"}
        # The Stack dimension of every metric line, which the alarms read.
        assert variables["STACK_NAME"] == {"Ref": "AWS::StackName"}, f"{name}: STACK_NAME {variables['STACK_NAME']}"
        group = fn["LoggingConfig"]["LogGroup"]["Ref"]
        assert props(exp["Resources"][group])["RetentionInDays"] == {"Ref": "LogRetentionDays"}
        assert fn.get("TracingConfig") == {"Mode": "Active"}, f"{name}: X-Ray tracing {fn.get('TracingConfig')}"
    assert src["Parameters"]["PolicyFile"]["Default"] == "/var/task/policy.yaml"


def check_timeouts(src, exp):
    """The broker finishes before API Gateway gives up on it (else the caller gets 504 while the broker still mints
    and charges a quota), and the authorizer answers well within it."""
    integ = api_body(exp)["paths"][TOKEN_PATH]["post"]["x-amazon-apigateway-integration"]
    limit_ms = integ["timeoutInMillis"]
    assert isinstance(limit_ms, int) and limit_ms <= 29000, limit_ms
    broker = function_of(exp, "BrokerFunction")["Timeout"]
    authorizer = function_of(exp, "AuthorizerFunction")["Timeout"]
    assert broker * 1000 < limit_ms, f"broker Timeout {broker} s is not below the integration timeout {limit_ms} ms"
    assert authorizer * 1000 < limit_ms and authorizer <= 10, f"authorizer Timeout {authorizer} s"


def check_releases(src, exp):
    """Both functions are released through a `live` alias that CodeDeploy shifts gradually and rolls back on the
    release alarms."""
    assert src["Parameters"]["DeploymentType"]["Default"].startswith("Canary"), "releases default to a canary"
    for name in FUNCTIONS:
        p = props(src["Resources"][name])
        assert p.get("AutoPublishAlias") == "live", f"{name}: AutoPublishAlias {p.get('AutoPublishAlias')}"
        pref = p.get("DeploymentPreference", {})
        assert pref.get("Type") == {"Ref": "DeploymentType"}, f"{name}: {pref}"
        assert pref.get("Enabled", True) is True
        alarms = {a["Ref"] for a in pref.get("Alarms", [])}
        assert alarms == RELEASE_ALARMS, f"{name}: release alarms {sorted(alarms)}"
        (_, alias), = [(k, v) for k, v in resources(exp, "AWS::Lambda::Alias").items()
                       if props(v)["FunctionName"] == {"Ref": name}]
        assert props(alias)["Name"] == "live"
        assert "CodeDeployLambdaAliasUpdate" in alias.get("UpdatePolicy", {}), f"{name}: alias not moved by CodeDeploy"
    for name, group in resources(exp, "AWS::CodeDeploy::DeploymentGroup").items():
        p = props(group)
        assert p["AlarmConfiguration"]["Enabled"] is True
        assert {a["Name"]["Ref"] for a in p["AlarmConfiguration"]["Alarms"]} == RELEASE_ALARMS
        assert "DEPLOYMENT_STOP_ON_ALARM" in p["AutoRollbackConfiguration"]["Events"], name


def _xray_only(action, resource, stmt):
    return action in XRAY and resource == "*"


def check_broker_role(src, exp):
    fn = function_of(exp, "BrokerFunction")
    assert fn["Role"] == {"Fn::GetAtt": ["BrokerRole", "Arn"]}
    ssm_arn = "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter${SsmPrefix}/*"
    seen = set()
    for action, resource, stmt in allowed(role_statements(exp, "BrokerRole")):
        service = action.split(":")[0]
        seen.add(service)
        if _xray_only(action, resource, stmt):
            continue
        assert "*" not in action, f"wildcard action {action}"
        assert resource != "*", f"{action} on every resource"
        if service == "ssm" and sub_string(resource) == CONTEXT_KEY_ARN or _context_key_decrypt(action, resource, stmt):
            continue  # check_context_key
        if is_token_cache_grant(action, resource, stmt):
            continue  # checks_token_cache
        if service == "ssm":
            assert action == "ssm:GetParameter", f"broker may only read single parameters, not {action}"
            assert sub_string(resource) == ssm_arn, f"ssm on {resource}"
        elif service == "kms":
            assert action == "kms:Decrypt", action
            assert resource == {"Ref": "SsmKmsKeyArn"}, f"kms on {resource}"
            cond = stmt.get("Condition", {})
            # Only through SSM, and only for parameters under the prefix: both conditions.
            assert sub_string(cond["StringEquals"]["kms:ViaService"]) == "ssm.${AWS::Region}.amazonaws.com"
            assert sub_string(cond["StringLike"]["kms:EncryptionContext:PARAMETER_ARN"]) == ssm_arn, cond
        elif service == "dynamodb":
            assert action in {"dynamodb:UpdateItem", "dynamodb:GetItem"}, action
            assert resource == {"Fn::GetAtt": ["QuotaTable", "Arn"]}, f"dynamodb on {resource}"
        elif service == "logs":
            assert action in {"logs:CreateLogStream", "logs:PutLogEvents"}
            assert resource == {"Fn::GetAtt": ["BrokerLogGroup", "Arn"]}
        elif service == "cognito-idp":
            raise AssertionError(f"broker role grants {action}: neither upstream mode needs a Cognito permission "
                                 "(check_no_cognito_permissions)")
        else:
            raise AssertionError(f"broker role grants {action} on {resource}")
    assert {"ssm", "kms", "dynamodb", "xray"} <= seen, f"broker role lacks a needed grant: {seen}"
    env = fn["Environment"]["Variables"]
    assert env["SSM_PREFIX"] == {"Ref": "SsmPrefix"} and env["QUOTA_TABLE"] == {"Ref": "QuotaTable"}


def check_authorizer_role(src, exp):
    fn = function_of(exp, "AuthorizerFunction")
    assert fn["Role"] == {"Fn::GetAtt": ["AuthorizerRole", "Arn"]}
    objects, seen = set(), set()
    for action, resource, stmt in allowed(role_statements(exp, "AuthorizerRole")):
        service = action.split(":")[0]
        seen.add(service)
        if _xray_only(action, resource, stmt):
            continue
        if service == "ssm" and sub_string(resource) == CONTEXT_KEY_ARN or _context_key_decrypt(action, resource, stmt):
            continue  # check_context_key
        if service == "s3":
            assert action in {"s3:GetObject", "s3:GetObjectVersion"}, f"authorizer may only read objects, not {action}"
            assert isinstance(resource, dict) and isinstance(resource.get("Fn::Sub"), list), f"s3 on {resource}"
            tmpl, vars_ = resource["Fn::Sub"]
            assert tmpl == "arn:${AWS::Partition}:s3:::${Object}", tmpl
            split = vars_["Object"]["Fn::Select"]
            assert split[0] == 1 and split[1]["Fn::Split"][0] == "s3://"
            objects.add(split[1]["Fn::Split"][1]["Ref"])
        elif service == "logs":
            assert action in {"logs:CreateLogStream", "logs:PutLogEvents"}
            assert resource == {"Fn::GetAtt": ["AuthorizerLogGroup", "Arn"]}
        else:
            raise AssertionError(f"authorizer role grants {action} on {resource}")
    # Exactly the two objects its environment names (TRUSTSTORE_URI, CRL_URI: check_mtls_domain).
    assert objects == {"TruststoreUri", "CrlUri"}, f"authorizer reads {objects}"
    assert "xray" in seen, "authorizer role cannot write X-Ray segments"


def check_no_cognito_permissions(src, exp):
    """No role of the stack may do anything in Cognito. Both upstream modes authenticate the app client by its id and
    secret alone: the hosted /oauth2/token endpoint with HTTP Basic, and GetClientToken, for which Cognito evaluates no
    IAM policy (its API reference: IAM permissions cannot be granted for it). A cognito-idp grant would therefore
    authorise nothing the broker uses, and a broad one (cognito-idp:*, a Cognito managed policy) would let the
    functions change user pools, app clients and their secrets."""
    for name, stmt in iam_statements(exp):
        for action in as_list(stmt.get("Action", [])) + as_list(stmt.get("NotAction", [])):
            assert isinstance(action, str), f"{name}: an action that is not a literal: {action}"
            assert not action.lower().startswith("cognito"), f"{name} grants {action}"
            assert action != "*", f"{name} grants every action"
    for name, role in resources(exp, "AWS::IAM::Role").items():
        for arn in props(role).get("ManagedPolicyArns", []):
            assert "cognito" not in json.dumps(arn).lower(), f"{name} attaches {arn}"


def _context_key_decrypt(action, resource, stmt):
    """A kms statement whose encryption-context condition names the context-key parameter (check_context_key checks
    it in full)."""
    cond = json.dumps(stmt.get("Condition", {}))
    return action.startswith("kms:") and "${ContextKeyParameterName}" in cond


def check_context_key(src, exp):
    """Both functions read the one context-key parameter the template names, and nothing else through this grant:
    ssm:GetParameter on exactly its ARN, and kms:Decrypt of SsmKmsKeyArn only through SSM and only for exactly that
    parameter (StringEquals, no wildcard). Both get CONTEXT_KEY_PARAMETER from the same parameter, and the
    parameter's default is outside the credentials prefix."""
    param = src["Parameters"]["ContextKeyParameterName"]
    assert param["Default"] == "/token-broker/context-key", param
    assert not param["Default"].startswith(src["Parameters"]["SsmPrefix"]["Default"] + "/")
    assert param.get("AllowedPattern") == src["Parameters"]["SsmPrefix"]["AllowedPattern"], param
    for function, role in (("AuthorizerFunction", "AuthorizerRole"), ("BrokerFunction", "BrokerRole")):
        env = function_of(exp, function)["Environment"]["Variables"]
        assert env.get("CONTEXT_KEY_PARAMETER") == {"Ref": "ContextKeyParameterName"}, f"{function}: {env}"
        # The rotation runbook's waits are these two numbers: the template states them rather than relying on
        # defaults, and both functions hold a key set equally long.
        assert env.get("CONTEXT_KEYS_TTL_SECONDS") == "300", f"{function}: CONTEXT_KEYS_TTL_SECONDS"
        assert env.get("CONTEXT_KEYS_MAX_STALE_SECONDS") == "3600", f"{function}: CONTEXT_KEYS_MAX_STALE_SECONDS"
        grants = [(a, r, s) for a, r, s in allowed(role_statements(exp, role))
                  if sub_string(r) == CONTEXT_KEY_ARN or _context_key_decrypt(a, r, s)]
        ssm = [(a, r) for a, r, _ in grants if a.startswith("ssm:")]
        assert ssm == [("ssm:GetParameter", {"Fn::Sub": CONTEXT_KEY_ARN})], f"{role}: context-key ssm grants {ssm}"
        kms = [(a, r, s) for a, r, s in grants if a.startswith("kms:")]
        assert len(kms) == 1, f"{role}: one kms grant for the context key expected, found {kms}"
        a, r, s = kms[0]
        assert a == "kms:Decrypt" and r == {"Ref": "SsmKmsKeyArn"}, f"{role}: {a} on {r}"
        cond = s.get("Condition", {})
        assert set(cond) == {"StringEquals"}, f"{role}: the context key's decrypt condition must be exact: {cond}"
        assert sub_string(cond["StringEquals"].get("kms:ViaService")) == "ssm.${AWS::Region}.amazonaws.com", cond
        assert sub_string(cond["StringEquals"].get("kms:EncryptionContext:PARAMETER_ARN")) == CONTEXT_KEY_ARN, cond
    authorizer = function_of(exp, "AuthorizerFunction")["Environment"]["Variables"]
    # The MAC's lifetime must cover the gateway's authorizer cache (off here); both are at most an hour.
    ttl = authorizer.get("CONTEXT_MAC_TTL_SECONDS")
    assert isinstance(ttl, str) and ttl.isdigit() and 1 <= int(ttl) <= 3600, f"CONTEXT_MAC_TTL_SECONDS {ttl}"
    cache = api_body(exp)["components"]["securitySchemes"]["CallerAuthorizer"]["x-amazon-apigateway-authorizer"]
    assert int(ttl) >= int(cache.get("authorizerResultTtlInSeconds", 300)), "a cached context would outlive its MAC"


def check_quota_table(src, exp):
    table = exp["Resources"]["QuotaTable"]
    assert table["Type"] == "AWS::DynamoDB::Table" and "Condition" not in table, table.get("Condition")
    p = props(table)
    assert p["BillingMode"] == "PAY_PER_REQUEST"
    assert p["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    assert p["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert p["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert p["SSESpecification"]["SSEEnabled"] is True
    assert p.get("DeletionProtectionEnabled") is True, "quota table without deletion protection"


def check_truststore_bucket(src, exp):
    name, bucket = one(exp, "AWS::S3::Bucket")
    p = props(bucket)
    # Retained: it holds the pinned truststore versions the mTLS domain needs.
    assert bucket.get("DeletionPolicy") == "Retain" and bucket.get("UpdateReplacePolicy") == "Retain"
    assert p["VersioningConfiguration"]["Status"] == "Enabled"
    assert all(p["PublicAccessBlockConfiguration"][k] is True for k in
               ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"))
    assert p["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    sse = p["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    assert sse["SSEAlgorithm"] in ("AES256", "aws:kms"), sse
    # Rollbacks pin old truststore versions: never expire noncurrent versions (nor anything else).
    for rule in p.get("LifecycleConfiguration", {}).get("Rules", []):
        for key in ("NoncurrentVersionExpiration", "NoncurrentVersionExpirationInDays", "ExpirationInDays",
                    "ExpirationDate", "NoncurrentVersionTransitions"):
            assert key not in rule, f"lifecycle rule {rule.get('Id')} sets {key}"


def check_trust_objects_protected(src, exp):
    """The bucket policy refuses non-TLS access, and lets only TrustAdminRoleArn (when set) write or delete the
    truststore and CRL objects."""
    _, policy = one(exp, "AWS::S3::BucketPolicy")
    assert props(policy)["Bucket"] == {"Ref": "TruststoreBucket"}
    stmts = []
    for s in props(policy)["PolicyDocument"]["Statement"]:
        stmts += [(s, None)] if not (isinstance(s, dict) and "Fn::If" in s) else \
            [(arm, s["Fn::If"][0]) for arm in branches(s) if not is_no_value(arm)]
    assert any(s["Effect"] == "Deny" and s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"
               for s, _ in stmts), "bucket must deny non-TLS access"
    guard = [(s, c) for s, c in stmts if s["Effect"] == "Deny" and "aws:PrincipalArn" in str(s.get("Condition"))]
    assert len(guard) == 1, f"one trust-object guard expected: {guard}"
    s, cond = guard[0]
    assert cond == "HasTrustAdmin" and src["Conditions"]["HasTrustAdmin"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "TrustAdminRoleArn"}, ""]}]}, cond
    assert s["Principal"] == "*"
    assert set(as_list(s["Action"])) >= {"s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion"}, s["Action"]
    resources_ = {sub_string(r) for r in as_list(s["Resource"])}
    assert resources_ == {"${TruststoreBucket.Arn}/truststore/*", "${TruststoreBucket.Arn}/crl/*"}, resources_
    assert s["Condition"] == {"ArnNotLike": {"aws:PrincipalArn": {"Ref": "TrustAdminRoleArn"}}}, s["Condition"]
    # Never deny changes to the policy itself: an administrator can always lift the guard.
    assert not any(a.startswith("s3:PutBucket") or a == "s3:*" for a in as_list(s["Action"]))


CHECKS = [
    check_functions, check_timeouts, check_releases, check_broker_role, check_authorizer_role, check_context_key,
    check_no_cognito_permissions,
    check_quota_table,
    check_truststore_bucket, check_trust_objects_protected,
]
