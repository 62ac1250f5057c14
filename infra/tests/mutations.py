"""Realistic mistakes, each applied alone to a deep copy of the source template. The test requires that SOME check
rejects each one, so no property of the template can regress without a test noticing."""

import copy

from tplutil import TOKEN_PATH


def _r(t, name):
    return t["Resources"][name]["Properties"]


def _api(t):
    return _r(t, "TokenApi")


def _body(t):
    return _api(t)["DefinitionBody"]


def _responses(t):
    return _body(t)["x-amazon-apigateway-gateway-responses"]


def _authz(t):
    return _body(t)["components"]["securitySchemes"]["CallerAuthorizer"]["x-amazon-apigateway-authorizer"]


def _policy(t, role, name):
    return [p for p in _r(t, role)["Policies"] if isinstance(p, dict) and p.get("PolicyName") == name][0]


def _dims(t, alarm):
    return _r(t, alarm)["Dimensions"]


# --- request path ----------------------------------------------------------------------------------------------------
def add_get(t):
    _body(t)["paths"][TOKEN_PATH]["get"] = copy.deepcopy(_body(t)["paths"][TOKEN_PATH]["post"])


def cache_on_header(t):
    _authz(t)["authorizerResultTtlInSeconds"] = 300
    _authz(t)["identitySource"] = "method.request.header.X-Caller"


def enable_execute_api(t):
    _api(t)["DisableExecuteApiEndpoint"] = False
    _body(t)["x-amazon-apigateway-endpoint-configuration"]["disableExecuteApiEndpoint"] = False


def drop_always_deploy(t):
    del _api(t)["AlwaysDeploy"]


def unpin_truststore(t):
    del _r(t, "MtlsDomain")["MutualTlsAuthentication"]["TruststoreVersion"]


def mtls_on_partner_domain(t):
    _r(t, "PartnerDomain")["MutualTlsAuthentication"] = _r(t, "MtlsDomain").pop("MutualTlsAuthentication")
    _r(t, "PartnerDomain")["SecurityPolicy"] = "TLS_1_2"
    del _r(t, "PartnerDomain")["EndpointAccessMode"]


def rule_tautology(t):
    t["Rules"]["TruststoreVersionPinned"]["Assertions"][0]["Assert"] = {
        "Fn::Equals": [{"Ref": "TruststoreVersion"}, {"Ref": "TruststoreVersion"}]}


def rule_tests_version_instead_of_uri(t):
    t["Rules"]["TruststoreVersionPinned"]["RuleCondition"] = {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "TruststoreVersion"}, ""]}]}


def crl_uri_elsewhere(t):
    _r(t, "AuthorizerFunction")["Environment"]["Variables"]["CRL_URI"] = {"Fn::If": [
        "HasCrl", {"Fn::Sub": "s3://${TruststoreBucket}/crl/crls.pem"}, {"Ref": "AWS::NoValue"}]}


def partner_tls_1_0(t):
    _r(t, "PartnerDomain")["SecurityPolicy"] = "TLS_1_0"


def partner_legacy_tls(t):
    _r(t, "PartnerDomain")["SecurityPolicy"] = "TLS_1_2"
    del _r(t, "PartnerDomain")["EndpointAccessMode"]


def log_authorization(t):
    fmt = _api(t)["AccessLogSetting"]["Format"]["Fn::Sub"]
    _api(t)["AccessLogSetting"]["Format"]["Fn::Sub"] = fmt[:-1] + ',"auth":"$context.requestHeader.Authorization"}'
    _r(t, "PartnerStage")["AccessLogSetting"]["Format"]["Fn::Sub"] = _api(t)["AccessLogSetting"]["Format"]["Fn::Sub"]


def rename_error_response_type(t):
    for stage in (_api(t), _r(t, "PartnerStage")):
        stage["AccessLogSetting"]["Format"]["Fn::Sub"] = stage["AccessLogSetting"]["Format"]["Fn::Sub"].replace(
            '"errorResponseType":', '"responseType":')


def data_trace_on_partner(t):
    _r(t, "PartnerStage")["MethodSettings"][0]["DataTraceEnabled"] = True


def drop_throttle(t):
    del _api(t)["MethodSettings"][0]["ThrottlingRateLimit"]


def merge_partner_into_mtls_stage(t):
    _r(t, "PartnerBasePathMapping")["Stage"] = {"Ref": "TokenApi.Stage"}
    _r(t, "PartnerWebAclAssociation")["ResourceArn"] = {
        "Fn::Sub": "arn:${AWS::Partition}:apigateway:${AWS::Region}::/restapis/${TokenApi}/stages/${TokenApi.Stage}"}
    del t["Resources"]["PartnerStage"]
    del t["Outputs"]["PartnerStageName"]
    _r(t, "StandardUsagePlan")["ApiStages"].pop()


def partner_stage_shares_mtls_throttle(t):
    s = _r(t, "PartnerStage")["MethodSettings"][0]
    s["ThrottlingRateLimit"], s["ThrottlingBurstLimit"] = {"Ref": "ThrottlingRateLimit"}, {"Ref": "ThrottlingBurstLimit"}


def drop_waf_rate_rule(t):
    _r(t, "PartnerWebAcl")["Rules"] = [r for r in _r(t, "PartnerWebAcl")["Rules"] if r["Name"] != "PerIpRateLimit"]


def ip_reputation_count_only(t):
    _r(t, "PartnerWebAcl")["Rules"][0]["OverrideAction"] = {"Count": {}}


def waf_on_mtls_stage(t):
    _r(t, "PartnerWebAclAssociation")["ResourceArn"] = {
        "Fn::Sub": "arn:${AWS::Partition}:apigateway:${AWS::Region}::/restapis/${TokenApi}/stages/${TokenApi.Stage}"}


def unscoped_permission(t):
    del _r(t, "BrokerInvokePermission")["SourceArn"]


def permission_on_latest(t):
    _r(t, "BrokerInvokePermission")["FunctionName"] = {"Fn::GetAtt": ["BrokerFunction", "Arn"]}


def integration_on_latest(t):
    post = _body(t)["paths"][TOKEN_PATH]["post"]["x-amazon-apigateway-integration"]
    post["uri"] = {"Fn::Sub": post["uri"]["Fn::Sub"].replace("${BrokerFunctionAliaslive}", "${BrokerFunction.Arn}")}


def header_key_source(t):
    _api(t)["ApiKeySourceType"] = "HEADER"


def plain_403(t):
    del _responses(t)["ACCESS_DENIED"]


def drop_default_4xx(t):
    del _responses(t)["DEFAULT_4XX"]


def drop_missing_authentication_token(t):
    del _responses(t)["MISSING_AUTHENTICATION_TOKEN"]


def drop_invalid_api_key(t):
    del _responses(t)["INVALID_API_KEY"]


def drop_waf_filtered(t):
    del _responses(t)["WAF_FILTERED"]


def drop_www_authenticate(t):
    del _responses(t)["UNAUTHORIZED"]["responseParameters"]["gatewayresponse.header.WWW-Authenticate"]


def access_denied_code(t):
    tmpl = _responses(t)["ACCESS_DENIED"]["responseTemplates"]
    tmpl["application/json"] = tmpl["application/json"].replace("unauthorized_client", "access_denied")


def no_partner_output(t):
    del t["Outputs"]["PartnerTokenEndpoint"]


# --- functions, roles, state ----------------------------------------------------------------------------------------
def x86(t):
    t["Globals"]["Function"]["Architectures"] = ["x86_64"]


def broker_timeout_30(t):
    _r(t, "BrokerFunction")["Timeout"] = 30


def authorizer_timeout_15(t):
    _r(t, "AuthorizerFunction")["Timeout"] = 15


def bucket_acls_enabled(t):
    _r(t, "TruststoreBucket")["OwnershipControls"]["Rules"][0]["ObjectOwnership"] = "ObjectWriter"


def drop_stack_name_env(t):
    del _r(t, "BrokerFunction")["Environment"]["Variables"]["STACK_NAME"]


def drop_tracing(t):
    del _r(t, "AuthorizerFunction")["Tracing"]


def drop_canary_alarms(t):
    del _r(t, "BrokerFunction")["DeploymentPreference"]["Alarms"]


def release_all_at_once(t):
    t["Parameters"]["DeploymentType"]["Default"] = "AllAtOnce"


def drop_auto_publish_alias(t):
    del _r(t, "AuthorizerFunction")["AutoPublishAlias"]
    del _r(t, "AuthorizerFunction")["DeploymentPreference"]
    del t["Outputs"]["AuthorizerLiveAlias"]
    _authz(t)["authorizerUri"] = {"Fn::Sub": _authz(t)["authorizerUri"]["Fn::Sub"].replace(
        "${AuthorizerFunctionAliaslive}", "${AuthorizerFunction.Arn}")}
    _r(t, "AuthorizerInvokePermission")["FunctionName"] = {"Fn::GetAtt": ["AuthorizerFunction", "Arn"]}


def broker_reads_all_ssm(t):
    _policy(t, "BrokerRole", "cognito-credentials")["PolicyDocument"]["Statement"][0]["Resource"] = {
        "Fn::Sub": "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/*"}


def drop_kms_encryption_context(t):
    cond = _policy(t, "BrokerRole", "cognito-credentials")["PolicyDocument"]["Statement"][1]["Condition"]
    del cond["StringLike"]


def authorizer_reads_bucket(t):
    _r(t, "AuthorizerRole")["Policies"].append({
        "PolicyName": "bucket", "PolicyDocument": {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": {"Fn::Sub": "${TruststoreBucket.Arn}/*"}}]}})


def no_pitr(t):
    _r(t, "QuotaTable")["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] = False


def quota_table_deletable(t):
    _r(t, "QuotaTable")["DeletionProtectionEnabled"] = False


def public_bucket(t):
    _r(t, "TruststoreBucket")["PublicAccessBlockConfiguration"]["BlockPublicPolicy"] = False


def bucket_unencrypted_and_deletable(t):
    del _r(t, "TruststoreBucket")["BucketEncryption"]
    t["Resources"]["TruststoreBucket"]["DeletionPolicy"] = "Delete"


def expire_noncurrent_versions(t):
    _r(t, "TruststoreBucket")["LifecycleConfiguration"] = {"Rules": [
        {"Id": "tidy", "Status": "Enabled", "NoncurrentVersionExpiration": {"NoncurrentDays": 30}}]}


def drop_trust_object_guard(t):
    stmts = _r(t, "TruststoreBucketPolicy")["PolicyDocument"]["Statement"]
    _r(t, "TruststoreBucketPolicy")["PolicyDocument"]["Statement"] = [s for s in stmts if "Fn::If" not in s]


def guard_only_truststore(t):
    guard = [s for s in _r(t, "TruststoreBucketPolicy")["PolicyDocument"]["Statement"] if "Fn::If" in s][0]
    guard["Fn::If"][1]["Resource"] = guard["Fn::If"][1]["Resource"][:1]


def authorizer_reads_every_parameter(t):
    _policy(t, "AuthorizerRole", "context-key")["PolicyDocument"]["Statement"][0]["Resource"] = {
        "Fn::Sub": "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/*"}


def context_key_prefix_match(t):
    """A wildcard after the name would grant /token-broker/context-key-anything too."""
    stmt = _policy(t, "BrokerRole", "context-key")["PolicyDocument"]["Statement"][0]
    stmt["Resource"] = {"Fn::Sub": stmt["Resource"]["Fn::Sub"] + "*"}


def context_key_decrypt_any_parameter(t):
    cond = _policy(t, "AuthorizerRole", "context-key")["PolicyDocument"]["Statement"][1]["Condition"]
    del cond["StringEquals"]["kms:EncryptionContext:PARAMETER_ARN"]


def context_key_decrypt_outside_ssm(t):
    cond = _policy(t, "BrokerRole", "context-key")["PolicyDocument"]["Statement"][1]["Condition"]
    del cond["StringEquals"]["kms:ViaService"]


def context_key_decrypt_under_credentials(t):
    """The broker's context-key grant pointed at the credentials path instead of the key parameter."""
    cond = _policy(t, "BrokerRole", "context-key")["PolicyDocument"]["Statement"][1]["Condition"]
    cond["StringEquals"]["kms:EncryptionContext:PARAMETER_ARN"] = {
        "Fn::Sub": "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter${SsmPrefix}/*"}


def drop_authorizer_context_key_grant(t):
    _r(t, "AuthorizerRole")["Policies"] = [
        p for p in _r(t, "AuthorizerRole")["Policies"] if not (isinstance(p, dict) and p.get("PolicyName") == "context-key")]


def broker_without_context_key_env(t):
    del _r(t, "BrokerFunction")["Environment"]["Variables"]["CONTEXT_KEY_PARAMETER"]


def authorizer_context_key_hard_coded(t):
    _r(t, "AuthorizerFunction")["Environment"]["Variables"]["CONTEXT_KEY_PARAMETER"] = "/token-broker/context-key"


def context_key_ttls_differ(t):
    _r(t, "BrokerFunction")["Environment"]["Variables"]["CONTEXT_KEYS_TTL_SECONDS"] = "60"


# --- no Cognito permissions (both upstream modes authenticate with the app-client secret) ----------------------------
def broker_grants_get_client_token(t):
    """The grant someone might add for the GetClientToken mode: Cognito evaluates no IAM policy for that call."""
    _r(t, "BrokerRole")["Policies"].append({
        "PolicyName": "cognito-client-token", "PolicyDocument": {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "cognito-idp:GetClientToken",
             "Resource": {"Fn::Sub": "arn:${AWS::Partition}:cognito-idp:${AWS::Region}:${AWS::AccountId}:userpool/*"}}]}})


def broker_cognito_wildcard_when_truststore(t):
    """Every Cognito action on every pool, hidden in one arm of a condition."""
    _r(t, "BrokerRole")["Policies"].append({"Fn::If": ["HasTruststore", {
        "PolicyName": "cognito", "PolicyDocument": {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["cognito-idp:*"], "Resource": "*"}]}}, {"Ref": "AWS::NoValue"}]})


def cognito_policy_beside_the_role(t):
    """A separate policy resource attached to the broker's role, out of sight of the role's own Policies."""
    t["Resources"]["BrokerCognitoPolicy"] = {"Type": "AWS::IAM::Policy", "Properties": {
        "PolicyName": "cognito-client-token", "Roles": [{"Ref": "BrokerRole"}],
        "PolicyDocument": {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "cognito-idp:GetClientToken", "Resource": "*"}]}}}


# --- observability ---------------------------------------------------------------------------------------------------
def no_invalid_client_alarm(t):
    del t["Resources"]["UpstreamInvalidClientAlarm"]


def authorizer_alarm_on_lambda_errors(t):
    """The alarm as it once was: the EMF metric plus the function's Lambda Errors, i.e. plus every 401."""
    p = _r(t, "AuthorizerErrorsAlarm")
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


def service_typo(t):
    _dims(t, "UpstreamErrorsAlarm")[0]["Value"] = "brokr"


def hard_coded_namespace(t):
    _r(t, "QuotaDenialsAlarm")["Namespace"] = "TokenBrokr"


def drop_stack_dimension(t):
    _r(t, "TrustRefreshFailuresAlarm")["Dimensions"] = _dims(t, "TrustRefreshFailuresAlarm")[:1]


def stack_dimension_hard_coded(t):
    _dims(t, "UpstreamInvalidClientAlarm")[1]["Value"] = "token-broker"


def crl_alarm_average(t):
    _r(t, "CrlNextUpdatePageAlarm")["Statistic"] = "Average"


def crl_alarm_missing_breaching(t):
    _r(t, "CrlNextUpdateWarningAlarm")["TreatMissingData"] = "breaching"


def drop_crl_gauge_missing_alarm(t):
    del t["Resources"]["CrlGaugeMissingAlarm"]


def jwks_alarm_single_failure(t):
    _r(t, "JwksFetchFailuresAlarm")["EvaluationPeriods"] = 1
    del _r(t, "JwksFetchFailuresAlarm")["DatapointsToAlarm"]


def metric_filter_without_stack(t):
    del _r(t, "GatewayThrottlesMetricFilter")["MetricTransformations"][0]["Dimensions"]


def execution_log_without_retention(t):
    del _r(t, "PartnerExecutionLogGroup")["RetentionInDays"]


def drop_execution_log_group(t):
    del t["Resources"]["ExecutionLogGroup"]


def drop_forged_context_alarm(t):
    del t["Resources"]["ForgedContextAlarm"]


def forged_context_alarm_on_authorizer(t):
    _dims(t, "ForgedContextAlarm")[0]["Value"] = {"Fn::FindInMap": ["Emf", "Dimension", "Authorizer"]}


def forged_context_alarm_waits(t):
    _r(t, "ForgedContextAlarm")["Period"] = 300
    _r(t, "ForgedContextAlarm")["EvaluationPeriods"] = 3


def forged_context_alarm_on_missing_context(t):
    _r(t, "ForgedContextAlarm")["MetricName"] = {"Fn::FindInMap": ["Emf", "Metric", "MissingAuthorizerContext"]}


def dashboard_typo(t):
    d = _r(t, "Dashboard")
    d["DashboardBody"] = {"Fn::Sub": d["DashboardBody"]["Fn::Sub"].replace("CrlSecondsToNextUpdate", "CrlSecondsToNextUpdat")}


def dashboard_without_reason_breakdown(t):
    d = _r(t, "Dashboard")
    d["DashboardBody"] = {"Fn::Sub": d["DashboardBody"]["Fn::Sub"].replace("Reason,Service,Stack", "Service,Stack")}


# --- fleet token cache (checks_token_cache.py) -------------------------------------------------------------------------
def _cache_policy(t):
    return [p for p in _r(t, "BrokerRole")["Policies"] if isinstance(p, dict) and "Fn::If" in p][0]["Fn::If"][1]


def _cache_stmt(t, service):
    return [s for s in _cache_policy(t)["PolicyDocument"]["Statement"] if s["Action"][0].startswith(service)][0]


def _kms_cond(t):
    return _cache_stmt(t, "kms:")["Condition"]


def _env(t, fn="BrokerFunction"):
    return _r(t, fn)["Environment"]["Variables"]


def fleet_cache_on_by_default(t):
    t["Parameters"]["FleetTokenCacheEnabled"]["Default"] = "true"


def fleet_cache_condition_always(t):
    """The condition tests the wrong value: the cache exists whatever the parameter says."""
    t["Conditions"]["HasFleetTokenCache"] = {"Fn::Not": [{"Fn::Equals": [{"Ref": "FleetTokenCacheEnabled"}, "yes"]}]}


def token_table_unconditional(t):
    del t["Resources"]["TokenCacheTable"]["Condition"]


def token_key_unconditional(t):
    del t["Resources"]["TokenCacheKey"]["Condition"]
    del t["Resources"]["TokenCacheKeyAlias"]["Condition"]


def token_env_unconditional(t):
    _env(t)["TOKEN_CACHE_TABLE"] = {"Ref": "TokenCacheTable"}


def token_grant_unconditional(t):
    pols = _r(t, "BrokerRole")["Policies"]
    i = [n for n, p in enumerate(pols) if isinstance(p, dict) and "Fn::If" in p][0]
    pols[i] = pols[i]["Fn::If"][1]


def token_output_unconditional(t):
    del t["Outputs"]["TokenCacheKeyArn"]["Condition"]


def token_table_sort_key(t):
    p = _r(t, "TokenCacheTable")
    p["AttributeDefinitions"].append({"AttributeName": "sk", "AttributeType": "S"})
    p["KeySchema"].append({"AttributeName": "sk", "KeyType": "RANGE"})


def token_table_ttl_attribute(t):
    _r(t, "TokenCacheTable")["TimeToLiveSpecification"]["AttributeName"] = "ttl"


def token_table_ttl_off(t):
    _r(t, "TokenCacheTable")["TimeToLiveSpecification"]["Enabled"] = False


def token_table_provisioned(t):
    p = _r(t, "TokenCacheTable")
    p["BillingMode"] = "PROVISIONED"
    p["ProvisionedThroughput"] = {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}


def token_table_like_quota_table(t):
    """Copied from the quota table: a backup of every token."""
    _r(t, "TokenCacheTable")["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] = True


def token_table_deletion_protected(t):
    _r(t, "TokenCacheTable")["DeletionProtectionEnabled"] = True


def token_table_stream(t):
    _r(t, "TokenCacheTable")["StreamSpecification"] = {"StreamViewType": "NEW_IMAGE"}


def token_table_resource_policy(t):
    _r(t, "TokenCacheTable")["ResourcePolicy"] = {"PolicyDocument": {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": {"Fn::GetAtt": ["AuthorizerRole", "Arn"]}}, "Action": "dynamodb:GetItem",
         "Resource": "*"}]}}


def token_table_unencrypted(t):
    _r(t, "TokenCacheTable")["SSESpecification"]["SSEEnabled"] = False


def broker_scans_token_table(t):
    _cache_stmt(t, "dynamodb:")["Action"].append("dynamodb:Scan")


def broker_deletes_token_items(t):
    _cache_stmt(t, "dynamodb:")["Action"].append("dynamodb:DeleteItem")


def token_grant_on_every_table(t):
    _cache_stmt(t, "dynamodb:")["Resource"] = {
        "Fn::Sub": "arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/*"}


def token_key_without_purpose(t):
    del _kms_cond(t)["StringEquals"]


def token_key_any_context_keys(t):
    del _kms_cond(t)["ForAllValues:StringEquals"]


def token_key_caller_in_context(t):
    """A caller id allowed into the encryption context, and so into CloudTrail."""
    _kms_cond(t)["ForAllValues:StringEquals"]["kms:EncryptionContextKeys"].append("caller")


def token_key_empty_context(t):
    del _kms_cond(t)["Null"]


def token_key_any_app_client(t):
    del _kms_cond(t)["Null"]["kms:EncryptionContext:app_client"]


def token_key_other_purpose(t):
    _kms_cond(t)["StringEquals"]["kms:EncryptionContext:purpose"] = "token-broker/*"


def token_key_encrypt_too(t):
    _cache_stmt(t, "kms:")["Action"] += ["kms:Encrypt", "kms:ReEncrypt*"]


def token_key_data_key_wildcard(t):
    _cache_stmt(t, "kms:")["Action"][0] = "kms:GenerateDataKey*"


def token_key_any_key(t):
    _cache_stmt(t, "kms:")["Resource"] = "*"


def authorizer_reads_token_table(t):
    _r(t, "AuthorizerRole")["Policies"].append({"Fn::If": ["HasFleetTokenCache", {
        "PolicyName": "token-cache", "PolicyDocument": {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": {"Fn::GetAtt": ["TokenCacheTable", "Arn"]}}]}},
        {"Ref": "AWS::NoValue"}]})


def authorizer_decrypts_token_keys(t):
    _r(t, "AuthorizerRole")["Policies"].append({"Fn::If": ["HasFleetTokenCache", {
        "PolicyName": "token-cache", "PolicyDocument": {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "kms:Decrypt", "Resource": {"Fn::GetAtt": ["TokenCacheKey", "Arn"]}}]}},
        {"Ref": "AWS::NoValue"}]})


def authorizer_reads_every_table(t):
    _r(t, "AuthorizerRole")["Policies"].append({
        "PolicyName": "tables", "PolicyDocument": {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["dynamodb:GetItem"], "Resource": {
                "Fn::Sub": "arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/*"}}]}})


def authorizer_managed_read_only(t):
    _r(t, "AuthorizerRole")["ManagedPolicyArns"] = [
        {"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/AmazonDynamoDBReadOnlyAccess"}]


def token_cache_env_on_authorizer(t):
    _env(t, "AuthorizerFunction")["TOKEN_CACHE_TABLE"] = {
        "Fn::If": ["HasFleetTokenCache", {"Ref": "TokenCacheTable"}, {"Ref": "AWS::NoValue"}]}


def token_key_rotation_off(t):
    _r(t, "TokenCacheKey")["EnableKeyRotation"] = False


def token_key_policy_wildcard(t):
    _r(t, "TokenCacheKey")["KeyPolicy"]["Statement"].append(
        {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:Decrypt", "Resource": "*"})


def token_key_policy_lambda_service(t):
    _r(t, "TokenCacheKey")["KeyPolicy"]["Statement"].append(
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "kms:Decrypt", "Resource": "*"})


def token_key_asymmetric(t):
    _r(t, "TokenCacheKey")["KeySpec"] = "RSA_2048"


def token_key_by_alias(t):
    """The broker told the alias: Decrypt is then pinned to whatever the alias points at."""
    _env(t)["TOKEN_CACHE_KMS_KEY"] = {"Fn::If": ["HasFleetTokenCache", {"Fn::Sub": "${TokenCacheKeyAlias}"},
                                                 {"Ref": "AWS::NoValue"}]}


def token_cache_timeout_out_of_range(t):
    _env(t)["TOKEN_CACHE_TIMEOUT_MS"]["Fn::If"][1] = "10000"


def token_cache_wait_below_lease(t):
    _env(t)["TOKEN_CACHE_WAIT_MS"]["Fn::If"][1] = "1000"


def token_cache_wait_eats_the_timeout(t):
    _env(t)["TOKEN_CACHE_WAIT_MS"]["Fn::If"][1] = "8000"
    _env(t)["TOKEN_CACHE_LEASE_MS"]["Fn::If"][1] = "8000"


def token_cache_wait_past_fetch_reserve(t):
    """A wait the lookup never reaches: it ends at the deadline less the fetch reserve (5 s of the 10 s)."""
    _env(t)["TOKEN_CACHE_WAIT_MS"]["Fn::If"][1] = "5500"
    _env(t)["TOKEN_CACHE_LEASE_MS"]["Fn::If"][1] = "4000"


def token_cache_lease_below_attempt(t):
    """A lease shorter than one Cognito attempt: a holder answering within its timeout loses the key to a waiter."""
    _env(t)["TOKEN_CACHE_LEASE_MS"]["Fn::If"][1] = "3000"


def token_cache_retry_left_to_default(t):
    del _env(t)["TOKEN_CACHE_RETRY_SECONDS"]


def drop_fleet_damaged_alarm(t):
    del t["Resources"]["FleetCacheDamagedAlarm"]


def fleet_damaged_alarm_waits(t):
    _r(t, "FleetCacheDamagedAlarm")["EvaluationPeriods"] = 3
    _r(t, "FleetCacheDamagedAlarm")["DatapointsToAlarm"] = 3


def fleet_unavailable_alarm_pages_at_once(t):
    _r(t, "FleetCacheUnavailableAlarm")["EvaluationPeriods"] = 1
    del _r(t, "FleetCacheUnavailableAlarm")["DatapointsToAlarm"]


def fleet_unavailable_alarm_gates_releases(t):
    _r(t, "BrokerFunction")["DeploymentPreference"]["Alarms"].append({"Ref": "FleetCacheUnavailableAlarm"})


def fleet_alarm_reads_hits(t):
    _r(t, "FleetCacheDamagedAlarm")["MetricName"] = "FleetCacheHits"


MUTATIONS = {f.__name__: f for f in [
    add_get, cache_on_header, enable_execute_api, drop_always_deploy, unpin_truststore, mtls_on_partner_domain,
    rule_tautology, rule_tests_version_instead_of_uri, crl_uri_elsewhere, partner_tls_1_0, partner_legacy_tls,
    log_authorization, rename_error_response_type, data_trace_on_partner, drop_throttle, merge_partner_into_mtls_stage,
    partner_stage_shares_mtls_throttle, drop_waf_rate_rule, ip_reputation_count_only, waf_on_mtls_stage,
    unscoped_permission, permission_on_latest, integration_on_latest, header_key_source, plain_403, drop_default_4xx,
    drop_missing_authentication_token, drop_invalid_api_key, drop_waf_filtered, drop_www_authenticate,
    access_denied_code, no_partner_output, x86, broker_timeout_30, authorizer_timeout_15, bucket_acls_enabled,
    drop_stack_name_env, drop_tracing,
    drop_canary_alarms, release_all_at_once, drop_auto_publish_alias, broker_reads_all_ssm,
    drop_kms_encryption_context, authorizer_reads_bucket, no_pitr, quota_table_deletable, public_bucket,
    bucket_unencrypted_and_deletable, expire_noncurrent_versions, drop_trust_object_guard, guard_only_truststore,
    no_invalid_client_alarm, authorizer_alarm_on_lambda_errors, service_typo, hard_coded_namespace,
    drop_stack_dimension, stack_dimension_hard_coded, crl_alarm_average, crl_alarm_missing_breaching,
    drop_crl_gauge_missing_alarm, jwks_alarm_single_failure, metric_filter_without_stack,
    execution_log_without_retention, drop_execution_log_group, dashboard_typo, dashboard_without_reason_breakdown,
    authorizer_reads_every_parameter, context_key_prefix_match, context_key_decrypt_any_parameter,
    context_key_decrypt_outside_ssm, context_key_decrypt_under_credentials, drop_authorizer_context_key_grant,
    broker_without_context_key_env, authorizer_context_key_hard_coded, context_key_ttls_differ,
    drop_forged_context_alarm, forged_context_alarm_on_authorizer, forged_context_alarm_waits,
    forged_context_alarm_on_missing_context,
    broker_grants_get_client_token, broker_cognito_wildcard_when_truststore, cognito_policy_beside_the_role,
    fleet_cache_on_by_default, fleet_cache_condition_always, token_table_unconditional, token_key_unconditional,
    token_env_unconditional, token_grant_unconditional, token_output_unconditional, token_table_sort_key,
    token_table_ttl_attribute, token_table_ttl_off, token_table_provisioned, token_table_like_quota_table,
    token_table_deletion_protected, token_table_stream, token_table_resource_policy, token_table_unencrypted,
    broker_scans_token_table, broker_deletes_token_items, token_grant_on_every_table, token_key_without_purpose,
    token_key_any_context_keys, token_key_caller_in_context, token_key_empty_context, token_key_any_app_client,
    token_key_other_purpose, token_key_encrypt_too, token_key_data_key_wildcard, token_key_any_key,
    authorizer_reads_token_table, authorizer_decrypts_token_keys, authorizer_reads_every_table,
    authorizer_managed_read_only, token_cache_env_on_authorizer, token_key_rotation_off, token_key_policy_wildcard,
    token_key_policy_lambda_service, token_key_asymmetric, token_key_by_alias, token_cache_timeout_out_of_range,
    token_cache_wait_below_lease, token_cache_wait_eats_the_timeout, token_cache_retry_left_to_default,
    token_cache_wait_past_fetch_reserve, token_cache_lease_below_attempt,
    drop_fleet_damaged_alarm, fleet_damaged_alarm_waits, fleet_unavailable_alarm_pages_at_once,
    fleet_unavailable_alarm_gates_releases, fleet_alarm_reads_hits,
]}
