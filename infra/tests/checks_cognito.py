"""Checks of infra/cognito-example.yaml's pre-token-generation trigger and GetClientToken client, and the realistic
mistakes each must catch (MUTATIONS). Each check takes the template as written and its SAM expansion, like the
checks of infra/template.yaml; test_cognito.py runs them.

What they hold the template to: the pool on the Essentials plan with the trigger as its V3_0 pre-token-generation
function; Cognito alone, for this pool and account, allowed to invoke it; the function arm64 on provided.al2023 from
the trigger zip, configured only with variables the trigger reads; its role reading exactly the context-key
parameter and decrypting it only through SSM for that parameter; the ClaimPrefix parameter agreeing with the code;
an app client whose only explicit auth flow is ALLOW_CLIENT_TOKEN_AUTH, with a generated secret.
"""

import copy
import json
import os
import re

from tplutil import REPO, allowed, as_list, const, one, props, resources, role_statements

TRIGGER_CONFIG_RS = os.path.join(REPO, "trigger", "src", "config.rs")
TRIGGER_PREFIX_RS = os.path.join(REPO, "trigger", "src", "prefix.rs")

PARAM_ARN = "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter${ContextKeyParameterName}"


def _pool(src):
    return props(one(src, "AWS::Cognito::UserPool")[1])


def _trigger_env_vars():
    """The variables the trigger reads: the rows of the table in trigger/src/config.rs's module doc."""
    with open(TRIGGER_CONFIG_RS, encoding="utf-8") as f:
        names = re.findall(r"^//! \| `([A-Z_]+)` \|", f.read(), re.M)
    assert names, "trigger/src/config.rs lost its variable table"
    return set(names)


def check_pool_on_essentials(src, exp):
    """Access-token customisation of client-credentials grants (V3_0) needs the Essentials or Plus plan."""
    assert _pool(src).get("UserPoolTier") in ("ESSENTIALS", "PLUS"), "the pool must be on Essentials (or Plus)"


def check_trigger_is_the_v3_pre_token_generation_function(src, exp):
    """V1_0 and V2_0 events are never sent for client-credentials grants: only V3_0 puts claims into M2M tokens. The
    legacy `PreTokenGeneration` key would configure a V1_0 trigger."""
    lambda_config = _pool(src).get("LambdaConfig", {})
    assert "PreTokenGeneration" not in lambda_config, "use PreTokenGenerationConfig (V3_0), not the V1_0 key"
    cfg = lambda_config["PreTokenGenerationConfig"]
    assert cfg["LambdaVersion"] == "V3_0", cfg
    assert cfg["LambdaArn"] == {"Fn::GetAtt": ["TriggerFunction", "Arn"]}, cfg


def check_only_cognito_for_this_pool_invokes_the_trigger(src, exp):
    perms = resources(src, "AWS::Lambda::Permission")
    targeting = {k: props(v) for k, v in perms.items() if "TriggerFunction" in json.dumps(props(v).get("FunctionName"))}
    assert len(targeting) == 1, f"exactly one invoke permission on the trigger expected: {sorted(targeting)}"
    (p,) = targeting.values()
    assert p["Action"] == "lambda:InvokeFunction"
    assert p["Principal"] == "cognito-idp.amazonaws.com", p["Principal"]
    assert p.get("SourceArn") == {"Fn::GetAtt": ["UserPool", "Arn"]}, "only this pool may invoke it"
    assert p.get("SourceAccount") == {"Ref": "AWS::AccountId"}, "only this account's pool may invoke it"


def check_trigger_function(src, exp):
    res = src["Resources"]["TriggerFunction"]
    assert res["Type"] == "AWS::Serverless::Function"
    p = props(res)
    assert p["CodeUri"] == "build/trigger.zip"
    assert p["Runtime"] == "provided.al2023" and p["Architectures"] == ["arm64"] and p["Handler"] == "bootstrap"
    assert p["Role"] == {"Fn::GetAtt": ["TriggerRole", "Arn"]}
    # Cognito waits 5 s for a trigger: a longer timeout only hides a hang until Cognito gives up.
    assert 1 <= int(p["Timeout"]) <= 5, p["Timeout"]
    fn = props(exp["Resources"]["TriggerFunction"])
    assert fn["Architectures"] == ["arm64"] and fn["Runtime"] == "provided.al2023"


def check_trigger_environment(src, exp):
    env = props(src["Resources"]["TriggerFunction"])["Environment"]["Variables"]
    unknown = set(env) - _trigger_env_vars()
    assert not unknown, f"variables the trigger does not read: {sorted(unknown)}"
    assert env["CLAIM_PREFIX"] == {"Ref": "ClaimPrefix"}
    assert env["CONTEXT_KEY_PARAMETER"] == {"Ref": "ContextKeyParameterName"}
    assert "CALLER_HASH_KEY" not in env or isinstance(env["CALLER_HASH_KEY"], dict), "no secret written in the template"


def check_trigger_role_reads_only_the_context_key(src, exp):
    """The trigger's only data is the key set: ssm:GetParameter on exactly that parameter, kms:Decrypt only through
    SSM for exactly that parameter (the same conditions as the broker's grant); logs and X-Ray besides."""
    grants = allowed(role_statements(src, "TriggerRole"))
    actions = sorted({a for a, _, _ in grants})
    assert actions == sorted(["logs:CreateLogStream", "logs:PutLogEvents", "xray:PutTraceSegments",
                              "xray:PutTelemetryRecords", "ssm:GetParameter", "kms:Decrypt"]), actions
    for action, resource, stmt in grants:
        if action.startswith("logs:"):
            assert resource == {"Fn::GetAtt": ["TriggerLogGroup", "Arn"]}, resource
        elif action.startswith("xray:"):
            assert resource == "*"
        elif action == "ssm:GetParameter":
            assert resource == {"Fn::Sub": PARAM_ARN}, resource
            assert "Condition" not in stmt
        elif action == "kms:Decrypt":
            assert resource == {"Ref": "SsmKmsKeyArn"}, resource
            cond = stmt["Condition"]["StringEquals"]
            assert cond["kms:ViaService"] == {"Fn::Sub": "ssm.${AWS::Region}.amazonaws.com"}, cond
            assert cond["kms:EncryptionContext:PARAMETER_ARN"] == {"Fn::Sub": PARAM_ARN}, cond


def check_claim_prefix_parameter(src, exp):
    """The template's default is the code's, and its pattern admits the default and refuses what the code refuses
    by shape (the code also refuses Cognito and AWS namespaces when it starts)."""
    param = src["Parameters"]["ClaimPrefix"]
    assert param["Default"] == const(TRIGGER_PREFIX_RS, "DEFAULT_PREFIX")
    pattern = re.compile(param["AllowedPattern"])
    assert pattern.fullmatch(param["Default"])
    for bad in ["", "tb", "1tb:", ":", "t b:", "tb:x", "a" * 33 + ":"]:
        assert not pattern.fullmatch(bad), f"ClaimPrefix admits {bad!r}"
    env = props(src["Resources"]["TriggerFunction"])["Environment"]["Variables"]
    assert env["CLAIM_PREFIX"] == {"Ref": "ClaimPrefix"}


def check_get_client_token_client(src, exp):
    """An app client for the broker's GetClientToken mode: a generated secret and ALLOW_CLIENT_TOKEN_AUTH as its only
    explicit auth flow (no user sign-in, no refresh tokens); the hosted-endpoint clients do not have that flow."""
    clients = {props(c)["ClientName"]: props(c) for c in resources(src, "AWS::Cognito::UserPoolClient").values()}
    token_clients = [n for n, c in clients.items() if "ALLOW_CLIENT_TOKEN_AUTH" in as_list(c.get("ExplicitAuthFlows", []))]
    assert token_clients == ["partner-acme"], token_clients
    c = clients["partner-acme"]
    assert c["ExplicitAuthFlows"] == ["ALLOW_CLIENT_TOKEN_AUTH"], c["ExplicitAuthFlows"]
    assert c["GenerateSecret"] is True
    assert c["AllowedOAuthScopes"] == ["customer-api/read"]
    for name in ("order-processing", "reporting"):
        assert clients[name]["AllowedOAuthFlows"] == ["client_credentials"], name


CHECKS = [
    check_pool_on_essentials,
    check_trigger_is_the_v3_pre_token_generation_function,
    check_only_cognito_for_this_pool_invokes_the_trigger,
    check_trigger_function,
    check_trigger_environment,
    check_trigger_role_reads_only_the_context_key,
    check_claim_prefix_parameter,
    check_get_client_token_client,
]


# --- mistakes each of which some check above must reject ---------------------------------------------------------------
def _r(t, name):
    return t["Resources"][name]["Properties"]


def _role_policy(t, name):
    return [p for p in _r(t, "TriggerRole")["Policies"] if p["PolicyName"] == name][0]["PolicyDocument"]["Statement"]


def _client(t, client_name):
    return [props(c) for c in resources(t, "AWS::Cognito::UserPoolClient").values()
            if props(c)["ClientName"] == client_name][0]


def pool_on_lite(t):
    _r(t, "UserPool")["UserPoolTier"] = "LITE"


def pool_without_tier(t):
    del _r(t, "UserPool")["UserPoolTier"]


def trigger_v2(t):
    _r(t, "UserPool")["LambdaConfig"]["PreTokenGenerationConfig"]["LambdaVersion"] = "V2_0"


def trigger_as_legacy_v1_key(t):
    lc = _r(t, "UserPool")["LambdaConfig"]
    lc["PreTokenGeneration"] = lc.pop("PreTokenGenerationConfig")["LambdaArn"]


def permission_without_source_arn(t):
    del _r(t, "TriggerInvokePermission")["SourceArn"]


def permission_without_source_account(t):
    del _r(t, "TriggerInvokePermission")["SourceAccount"]


def permission_for_any_pool(t):
    _r(t, "TriggerInvokePermission")["SourceArn"] = {
        "Fn::Sub": "arn:${AWS::Partition}:cognito-idp:${AWS::Region}:${AWS::AccountId}:userpool/*"}


def permission_for_lambda_service(t):
    _r(t, "TriggerInvokePermission")["Principal"] = "lambda.amazonaws.com"


def second_invoke_permission(t):
    t["Resources"]["TriggerPublicInvoke"] = copy.deepcopy(t["Resources"]["TriggerInvokePermission"])
    _r(t, "TriggerPublicInvoke")["Principal"] = "*"


def trigger_on_x86(t):
    _r(t, "TriggerFunction")["Architectures"] = ["x86_64"]


def trigger_timeout_beyond_cognitos_wait(t):
    _r(t, "TriggerFunction")["Timeout"] = 30


def trigger_from_the_broker_zip(t):
    _r(t, "TriggerFunction")["CodeUri"] = "build/broker.zip"


def trigger_env_typo(t):
    env = _r(t, "TriggerFunction")["Environment"]["Variables"]
    env["CLAIMS_PREFIX"] = env.pop("CLAIM_PREFIX")


def trigger_prefix_hardcoded(t):
    _r(t, "TriggerFunction")["Environment"]["Variables"]["CLAIM_PREFIX"] = "tb:"


def role_reads_every_parameter(t):
    _role_policy(t, "context-key")[0]["Resource"] = {
        "Fn::Sub": "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/*"}


def role_reads_by_path(t):
    _role_policy(t, "context-key")[0]["Action"] = ["ssm:GetParameter", "ssm:GetParametersByPath"]


def role_decrypts_without_via_service(t):
    del _role_policy(t, "context-key")[1]["Condition"]["StringEquals"]["kms:ViaService"]


def role_decrypts_any_parameter(t):
    _role_policy(t, "context-key")[1]["Condition"]["StringEquals"]["kms:EncryptionContext:PARAMETER_ARN"] = {
        "Fn::Sub": "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/*"}


def role_decrypts_any_key(t):
    _role_policy(t, "context-key")[1]["Resource"] = "*"


def claim_prefix_default_in_cognito_namespace(t):
    t["Parameters"]["ClaimPrefix"]["Default"] = "cognito:"


def claim_prefix_pattern_admits_anything(t):
    t["Parameters"]["ClaimPrefix"]["AllowedPattern"] = "^.*$"


def token_client_with_password_flow(t):
    _client(t, "partner-acme")["ExplicitAuthFlows"] = ["ALLOW_CLIENT_TOKEN_AUTH", "ALLOW_USER_PASSWORD_AUTH"]


def token_client_with_refresh_tokens(t):
    _client(t, "partner-acme")["ExplicitAuthFlows"] = ["ALLOW_CLIENT_TOKEN_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"]


def token_client_without_secret(t):
    _client(t, "partner-acme")["GenerateSecret"] = False


def token_client_without_the_flow(t):
    _client(t, "partner-acme")["ExplicitAuthFlows"] = ["ALLOW_REFRESH_TOKEN_AUTH"]


MUTATIONS = {f.__name__: f for f in [
    pool_on_lite, pool_without_tier, trigger_v2, trigger_as_legacy_v1_key,
    permission_without_source_arn, permission_without_source_account, permission_for_any_pool,
    permission_for_lambda_service, second_invoke_permission,
    trigger_on_x86, trigger_timeout_beyond_cognitos_wait, trigger_from_the_broker_zip, trigger_env_typo,
    trigger_prefix_hardcoded,
    role_reads_every_parameter, role_reads_by_path, role_decrypts_without_via_service, role_decrypts_any_parameter,
    role_decrypts_any_key,
    claim_prefix_default_in_cognito_namespace, claim_prefix_pattern_admits_anything,
    token_client_with_password_flow, token_client_with_refresh_tokens, token_client_without_secret,
    token_client_without_the_flow,
]}
