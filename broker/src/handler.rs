//! The broker's request handler: a plain async function over its dependencies, so the Lambda, the local stack, the
//! tests and the benchmark all run exactly this code.
//!
//! Order of checks, and why:
//! 1. Caller from `requestContext.authorizer` (and nowhere else), and its MAC ([`crate::caller_context`]): the
//!    context must be the authorizer's, made for this API and stage, and not expired. Missing means the gateway is
//!    misconfigured or was bypassed; a MAC that does not verify means the broker was invoked directly with a context
//!    of someone's making (or the two functions disagree on the key). Either is a 500, logged at error level, and
//!    nothing else is looked at: no method, body, quota, credentials or Cognito. Without a usable key set (the store
//!    down past its stale bound) it is a 503, again before anything else.
//! 2. Caller known and enabled in the broker's own copy of the policy. The authorizer already denies unknown or
//!    disabled callers; checking again means a stale authorizer cache or a policy mismatch between the two functions
//!    can never turn into a token (defence in depth, 403 `unauthorized_client`).
//! 3. Request grammar, then the body's `client_id` against the caller, then scopes. All before any quota or network.
//!    Then the certificate binding, for a caller whose policy asks for it: the context must name the certificate's
//!    thumbprint, or nothing is issued (500, before any quota or network).
//! 4. Token reuse (when the caller has it on): a hit costs no quota, since quota meters Cognito grants. A token is
//!    reused only for the same caller, scopes and (when bound) certificate ([`crate::reuse::ReuseKey`]).
//! 5. Quota charge (fails closed), credentials, the Cognito call in the app client's upstream mode, with the caller
//!    claims signed into its client metadata for the pre-token-generation trigger (`tb_shared::context::claims`). A failure after the charge refunds it only when it
//!    is a passing outage (a 503: the credential store or Cognito down, slow or throttling, the breaker open); a
//!    failure the same request would meet again (a 502: a refused secret, missing credentials, an unusable answer)
//!    keeps it, so retrying a failing request is metered like any other attempt to reach Cognito
//!    ([`BrokerError::refunds_charge`]). The refund gets only the time left before the Lambda's deadline.

use std::time::{Duration, Instant, SystemTime};

use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use lambda_runtime::LambdaEvent;
use secrecy::SecretString;
use subtle::ConstantTimeEq as _;
use tb_shared::context::claims::{self, CallerClaims};
use tb_shared::context::{AuthMethod, CallerContext, KeySet};
use tb_shared::ids::ScopeSet;
use tb_shared::policy::Caller;
use tracing::Instrument as _;

use crate::app::App;
use crate::caller_context::{self, RefusedContext};
use crate::credentials::CredentialError;
use crate::error::{BrokerError, RETRY_AFTER_UPSTREAM};
use crate::fleet::{FetchReason, Lookup, Ticket};
use crate::metrics::InvocationMetrics;
use crate::quota::{Charge, QuotaError, QuotaOutcome};
use crate::request;
use crate::response;
use crate::reuse::ReuseKey;
use crate::upstream::UpstreamError;

/// What one invocation learnt, for its single decision log line and its metrics.
#[derive(Default)]
struct Trace {
    caller: Option<String>,
    auth_method: Option<&'static str>,
    /// The policy version the authorizer decided with; differing from the broker's means the two functions run
    /// different policy documents (normal for a moment during a deployment, a problem if it persists).
    authorizer_policy: Option<String>,
    requested: Option<String>,
    granted: Option<String>,
    quota: &'static str,
    upstream_latency: Option<Duration>,
    reused: bool,
    /// What the fleet token cache did for this request, when the caller uses it.
    fleet: Option<&'static str>,
    /// Where a context whose MAC was refused claims to come from, for its log line.
    refused_context: Option<RefusedContext>,
    metrics: InvocationMetrics,
}

/// A token ready to hand out.
struct Grant {
    access_token: SecretString,
    expires_in: u64,
    scope: ScopeSet,
}

/// Handles one proxy event. Never returns `Err`: every failure is an OAuth-shaped answer, so the runtime never
/// reports an invocation error that API Gateway would turn into an unshaped 502.
pub async fn handle(
    broker: &App,
    event: LambdaEvent<ApiGatewayProxyRequest>,
) -> Result<ApiGatewayProxyResponse, lambda_runtime::Error> {
    let (req, ctx) = event.into_parts();
    let request_id = req
        .request_context
        .request_id
        .clone()
        .filter(|r| !r.is_empty() && r.len() <= 128)
        .unwrap_or_else(|| ctx.request_id.clone());
    let deadline = lambda_deadline(ctx.deadline);
    let span = tracing::info_span!("token_request", request_id = %request_id);
    Ok(async move {
        let mut trace = Trace { quota: "not_charged", ..Default::default() };
        let result = process(broker, &req, deadline, &mut trace).await;
        finish(broker, &request_id, result, trace)
    }
    .instrument(span)
    .await)
}

/// The Lambda's deadline as an `Instant`. A deadline of 0 means none was given (handler called directly, as in tests
/// and the benchmark); then only the configured timeouts apply. Read against the system clock, not the app's: the
/// deadline is the runtime's real one, whatever time the checks are made at.
fn lambda_deadline(deadline_ms: u64) -> Option<Instant> {
    if deadline_ms == 0 {
        return None;
    }
    let deadline = SystemTime::UNIX_EPOCH + Duration::from_millis(deadline_ms);
    let left = deadline.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO);
    Some(Instant::now() + left)
}

async fn process(
    broker: &App,
    req: &ApiGatewayProxyRequest,
    deadline: Option<Instant>,
    trace: &mut Trace,
) -> Result<Grant, BrokerError> {
    let ctx = CallerContext::from_map(&req.request_context.authorizer.fields).map_err(BrokerError::MissingContext)?;
    trace.caller = Some(broker.hasher.display(&ctx.caller_id));
    trace.auth_method = Some(ctx.auth_method.as_str());
    trace.authorizer_policy = Some(ctx.policy_version.clone());
    let keys = match caller_context::check(broker, &req.request_context, &ctx).await {
        Ok(keys) => keys,
        Err(e) => {
            if matches!(e, BrokerError::ForgedContext(_)) {
                trace.refused_context = Some(RefusedContext::of(&req.request_context));
            }
            return Err(e);
        }
    };
    let caller = match broker.policy.caller(&ctx.caller_id) {
        None => return Err(BrokerError::AccessDenied("caller_unknown")),
        Some(c) if !c.enabled => return Err(BrokerError::AccessDenied("caller_disabled")),
        Some(c) => c,
    };

    let token_req = request::parse(req)?;
    if let Some(body_client) = &token_req.client_id {
        if !bool::from(body_client.as_bytes().ct_eq(ctx.caller_id.as_str().as_bytes())) {
            return Err(BrokerError::InvalidClient);
        }
    }
    let scopes = approved_scopes(caller, token_req.scope.as_deref())?;
    trace.requested = Some(scopes.to_param());

    let cert_thumbprint = certificate_binding(caller, &ctx)?;
    let reuse_key = ReuseKey {
        app_client: caller.cognito_client.clone(),
        scopes: scopes.clone(),
        caller: ctx.caller_id.clone(),
        auth_method: ctx.auth_method,
        cert_thumbprint: cert_thumbprint.clone(),
    };
    let mut ticket = None;
    if caller.token_reuse {
        if let Some(hit) = broker.reuse.get(&reuse_key) {
            // Checked again although the token was this caller's: the policy is the one rule, whatever is cached.
            if hit.expires_in <= caller.max_token_lifetime.as_secs() {
                trace.reused = true;
                trace.metrics.reuse_hit = true;
                return Ok(Grant { access_token: hit.access_token, expires_in: hit.expires_in, scope: hit.scope });
            }
        }
        if let (true, Some(fleet)) = (caller.fleet_token_reuse, &broker.fleet) {
            match fleet.lookup(&reuse_key, deadline).await {
                Lookup::Hit(found) if found.expires_in <= caller.max_token_lifetime.as_secs() => {
                    trace.reused = true;
                    trace.fleet = Some("hit");
                    trace.metrics.reuse_hit = true;
                    trace.metrics.fleet_hit = true;
                    let grant = Grant {
                        access_token: found.access_token.clone(),
                        expires_in: found.expires_in,
                        scope: found.scope.clone(),
                    };
                    broker.reuse.put_until(
                        reuse_key,
                        found.access_token,
                        found.serve_until,
                        found.expires_at,
                        found.scope,
                    );
                    return Ok(grant);
                }
                Lookup::Hit(_) => trace.fleet = Some("too_long"),
                Lookup::Fetch(t) => {
                    trace.fleet = Some(t.reason.as_str());
                    trace.metrics.fleet_unavailable = t.reason == FetchReason::Unavailable;
                    trace.metrics.fleet_waited_out = t.reason == FetchReason::WaitedOut;
                    trace.metrics.fleet_damaged = t.damaged;
                    ticket = Some(t);
                }
            }
        }
    }
    // From here on, a lease this instance holds is either filled with the new token or given back.

    let charge = match broker.quotas.try_charge(&ctx.caller_id, &caller.quotas, broker.clock.now()).await {
        Ok(QuotaOutcome::Granted(charge)) => {
            trace.quota = "charged";
            charge
        }
        Ok(QuotaOutcome::Exhausted { retry_after, window }) => {
            trace.quota = "exhausted";
            trace.metrics.quota_exhausted = true;
            give_back(broker, ticket, deadline, trace).await;
            return Err(BrokerError::QuotaExhausted { retry_after, window });
        }
        Err(e) => {
            trace.quota = "unavailable";
            tracing::warn!(error = %e, "quota store unavailable; failing closed");
            give_back(broker, ticket, deadline, trace).await;
            return Err(BrokerError::QuotaUnavailable);
        }
    };

    let claims = CallerClaims { context: ctx, cert_thumbprint };
    let asked_at = broker.clock.now();
    match obtain(broker, caller, &scopes, (&claims, &keys), deadline, trace).await {
        Ok(grant) => {
            if caller.token_reuse {
                let lifetime = Duration::from_secs(grant.expires_in);
                broker.reuse.put(reuse_key, grant.access_token.clone(), lifetime, grant.scope.clone());
            }
            if let (Some(t), Some(fleet)) = (ticket, &broker.fleet) {
                // The time asked, not answered: the stored token's reuse deadline errs early, never late.
                trace.metrics.fleet_unavailable |=
                    fleet.store(t, &grant.access_token, asked_at, grant.expires_in, &grant.scope, deadline).await;
            }
            Ok(grant)
        }
        Err(e) => {
            give_back(broker, ticket, deadline, trace).await;
            if e.refunds_charge() {
                refund(broker, &charge, deadline, trace).await;
            }
            Err(e)
        }
    }
}

/// Time kept back from the Lambda deadline after a refund, to log, write the metrics and return the answer.
const ANSWER_RESERVE: Duration = Duration::from_millis(100);

/// Gives a charge back, within the time left before the deadline (less [`ANSWER_RESERVE`]); skipped when none is
/// left. The attempts already ran up to shortly before the deadline, and the store's own budget
/// (`AWS_OPERATION_TIMEOUT_MS` per counter, 1.5 s by default) would outlast it: the runtime would then end the
/// invocation and API Gateway answer an unshaped error. A refund that fails, is cut short or is skipped costs the
/// caller one grant, which is the safe direction.
async fn refund(broker: &App, charge: &Charge, deadline: Option<Instant>, trace: &mut Trace) {
    let result = match deadline {
        None => broker.quotas.refund(charge).await,
        Some(d) => {
            let left = d.checked_duration_since(Instant::now()).and_then(|l| l.checked_sub(ANSWER_RESERVE));
            let Some(budget) = left.filter(|b| !b.is_zero()) else {
                trace.quota = "refund_skipped";
                tracing::warn!("quota refund skipped: no time left before the Lambda deadline");
                return;
            };
            match tokio::time::timeout(budget, broker.quotas.refund(charge)).await {
                Ok(r) => r,
                Err(_) => Err(QuotaError::Unavailable("refund cut at the Lambda deadline".into())),
            }
        }
    };
    match result {
        Ok(()) => trace.quota = "refunded",
        Err(re) => {
            trace.quota = "refund_failed";
            tracing::warn!(error = %re, "quota refund failed");
        }
    }
}

/// Gives back the fleet-cache lease of a request that ends without a token, so other instances waiting for it
/// move on at once.
async fn give_back(broker: &App, ticket: Option<Ticket>, deadline: Option<Instant>, trace: &mut Trace) {
    if let (Some(t), Some(fleet)) = (ticket, &broker.fleet) {
        trace.metrics.fleet_unavailable |= fleet.abandon(t, deadline).await;
    }
}

/// The scopes to ask Cognito for: the requested ones if all are allowed, else the caller's defaults when none were
/// requested.
fn approved_scopes(caller: &Caller, requested: Option<&str>) -> Result<ScopeSet, BrokerError> {
    match requested {
        Some(raw) => {
            let set = ScopeSet::parse_param(raw)
                .map_err(|_| BrokerError::InvalidScope("the scope parameter is malformed"))?;
            if !set.is_subset(&caller.allowed_scopes) {
                return Err(BrokerError::InvalidScope("a requested scope is not allowed for this client"));
            }
            Ok(set)
        }
        None if caller.default_scopes.is_empty() => {
            Err(BrokerError::InvalidScope("no scope was requested and this client has no default scope"))
        }
        None => Ok(caller.default_scopes.clone()),
    }
}

/// The certificate thumbprint a caller's tokens are bound to, when its policy asks for binding (RFC 8705 §3).
///
/// The thumbprint is the context's `credentialFingerprint` of an mTLS caller, which the context MAC covers: the
/// authorizer computed it from the certificate it verified. A caller bound by policy but without one (a JWT caller,
/// which the policy loader already refuses to bind, or an authorizer from before binding) gets nothing rather than an
/// unbound token.
fn certificate_binding(caller: &Caller, ctx: &CallerContext) -> Result<Option<String>, BrokerError> {
    if !caller.bind_token_to_certificate {
        return Ok(None);
    }
    if ctx.auth_method != AuthMethod::Mtls || !claims::is_thumbprint(&ctx.credential_fingerprint) {
        tracing::error!(
            auth_method = ctx.auth_method.as_str(),
            "the caller's tokens must be bound to its certificate, but the context names no certificate thumbprint"
        );
        return Err(BrokerError::CertificateBindingUnavailable);
    }
    Ok(Some(ctx.credential_fingerprint.clone()))
}

/// Credentials, the upstream call, one credential refresh on `invalid_client`, and the lifetime check. The caller
/// claims go with every attempt, signed with the key set the context was verified with (read once per request,
/// before any charge) for the app client id of the credentials used.
async fn obtain(
    broker: &App,
    caller: &Caller,
    scopes: &ScopeSet,
    (claims, keys): (&CallerClaims, &KeySet),
    deadline: Option<Instant>,
    trace: &mut Trace,
) -> Result<Grant, BrokerError> {
    let app = caller.cognito_client.as_str();
    let mut creds = broker.credentials.get(app).await.map_err(|e| credential_error(app, e, trace))?;
    let mut refreshed = false;
    let token = loop {
        let metadata = claims::sign(claims, &creds.client_id, keys, broker.clock.now(), claims::CLAIMS_TTL);
        let started = Instant::now();
        let result = broker.upstream.request_token(&creds, scopes, &metadata, deadline).await;
        let took = started.elapsed();
        trace.upstream_latency = Some(trace.upstream_latency.unwrap_or_default() + took);
        match result {
            Ok(t) => break t,
            Err(UpstreamError::InvalidClient) if !refreshed => {
                tracing::warn!(app_client = app, "token endpoint refused our client secret; refreshing it once");
                refreshed = true;
                trace.metrics.credential_refreshes += 1;
                creds = broker.credentials.refresh_rejected(app, &creds).await.map_err(|e| {
                    if e == CredentialError::Refused {
                        trace.metrics.upstream_errors += 1;
                    }
                    credential_error(app, e, trace)
                })?;
            }
            Err(UpstreamError::InvalidClient) => {
                trace.metrics.upstream_errors += 1;
                trace.metrics.invalid_client_alarm = true;
                tracing::error!(app_client = app, "token endpoint refused our client secret after a refresh");
                return Err(BrokerError::UpstreamInvalidClient);
            }
            Err(UpstreamError::Unavailable { reason, retry_after }) => {
                trace.metrics.upstream_errors += 1;
                trace.metrics.breaker_open = reason == crate::upstream::breaker::OPEN_REASON;
                return Err(BrokerError::UpstreamUnavailable {
                    reason,
                    retry_after: retry_after.unwrap_or(RETRY_AFTER_UPSTREAM),
                });
            }
            Err(UpstreamError::BadResponse(why)) => {
                trace.metrics.upstream_errors += 1;
                tracing::error!(app_client = app, reason = why, "token endpoint answer rejected");
                return Err(BrokerError::UpstreamBadResponse(why));
            }
        }
    };
    // Cognito's token validity is set per app client and a token cannot be shortened after issue (its `exp` is
    // signed). Handing out a longer-lived token than the caller may hold would break the policy silently, so the
    // broker refuses it and raises an alarm metric; the operator fixes it by setting the app client's access-token
    // validity to at most the caller's max_token_lifetime.
    if token.expires_in > caller.max_token_lifetime.as_secs() {
        trace.metrics.lifetime_alarm = true;
        tracing::error!(
            app_client = app,
            expires_in = token.expires_in,
            max = caller.max_token_lifetime.as_secs(),
            "token outlives the caller's maximum lifetime; lower the app client's access-token validity"
        );
        return Err(BrokerError::TokenLifetimeTooLong);
    }
    Ok(Grant { access_token: token.access_token, expires_in: token.expires_in, scope: token.scope })
}

fn credential_error(app: &str, e: CredentialError, trace: &mut Trace) -> BrokerError {
    match e {
        CredentialError::Refused => {
            trace.metrics.invalid_client_alarm = true;
            tracing::error!(
                app_client = app,
                "token endpoint refuses the client secret the credential store holds; not sending it again for now"
            );
            BrokerError::UpstreamInvalidClient
        }
        CredentialError::Unavailable(_) => {
            tracing::warn!(error = %e, "credentials unavailable and none cached");
            BrokerError::CredentialsUnavailable
        }
        CredentialError::NotFound | CredentialError::Malformed(_) => {
            tracing::error!(error = %e, "credentials misconfigured for the caller's app client");
            BrokerError::CredentialsMisconfigured
        }
    }
}

/// Logs the decision once, writes the metrics, and builds the answer.
fn finish(
    broker: &App,
    request_id: &str,
    result: Result<Grant, BrokerError>,
    mut trace: Trace,
) -> ApiGatewayProxyResponse {
    let caller = trace.caller.as_deref().unwrap_or("-");
    let auth_method = trace.auth_method.unwrap_or("-");
    let authorizer_policy = trace.authorizer_policy.as_deref().unwrap_or("-");
    let policy_version = broker.policy.version.as_str();
    let requested = trace.requested.as_deref().unwrap_or("-");
    let latency_ms = trace.upstream_latency.map(|d| d.as_secs_f64() * 1000.0);
    let response = match result {
        Ok(grant) => {
            trace.granted = Some(grant.scope.to_param());
            trace.metrics.granted = true;
            tracing::info!(
                caller,
                auth_method,
                policy_version,
                authorizer_policy,
                requested_scopes = requested,
                granted_scopes = trace.granted.as_deref().unwrap_or("-"),
                decision = "allow",
                reason = if trace.reused { "reused" } else { "issued" },
                fleet_cache = trace.fleet,
                quota = trace.quota,
                upstream_latency_ms = latency_ms,
                expires_in = grant.expires_in,
                "token granted"
            );
            response::token(&grant.access_token, grant.expires_in, &grant.scope)
        }
        Err(err) => {
            let reason = err.code();
            trace.metrics.denial_reason = Some(reason);
            let status = err.answer().status;
            if let BrokerError::ForgedContext(why) = err {
                trace.metrics.forged_context = Some(why.reason());
                let unknown = RefusedContext { api_id: "-".into(), stage: "-".into(), key_id: "-".into() };
                let origin = trace.refused_context.as_ref().unwrap_or(&unknown);
                tracing::error!(
                    event = "forged_context",
                    decision = "deny",
                    reason,
                    mac_reason = why.reason(),
                    claimed_caller = caller,
                    auth_method,
                    api_id = %origin.api_id,
                    stage = %origin.stage,
                    mac_key_id = %origin.key_id,
                    status,
                    "authorizer context refused: its MAC does not verify; the broker was invoked directly with a \
                     context of someone's making, or the authorizer and the broker disagree on the context key"
                );
            } else if let BrokerError::MissingContext(ref why) = err {
                trace.metrics.missing_context_alarm = true;
                tracing::error!(
                    decision = "deny",
                    reason,
                    detail = %why,
                    status,
                    "request without a usable authorizer context: the gateway is misconfigured or was bypassed"
                );
            } else if status >= 500 {
                trace.metrics.context_keys_unavailable = err == BrokerError::ContextKeysUnavailable;
                tracing::error!(
                    caller,
                    requested_scopes = requested,
                    decision = "deny",
                    reason,
                    status,
                    quota = trace.quota,
                    upstream_latency_ms = latency_ms,
                    "token request failed"
                );
            } else {
                tracing::info!(
                    caller,
                    requested_scopes = requested,
                    decision = "deny",
                    reason,
                    status,
                    quota = trace.quota,
                    upstream_latency_ms = latency_ms,
                    "token request refused"
                );
            }
            response::error(&err, request_id)
        }
    };
    trace.metrics.upstream_latency = trace.upstream_latency;
    trace.metrics.flush(&broker.metrics, request_id);
    response
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, SystemTime};

    use serde_json::Value;
    use tb_shared::clock::Clock;
    use tb_shared::env::Env;
    use tb_shared::telemetry::{CaptureWriter, MetricsSink, STACK_DIMENSION};

    use crate::credentials::{ClientCredentials, MemoryCredentialSource};
    use crate::metrics::names;
    use crate::quota::MemoryQuotaStore;
    use crate::{build, Config, Deps};

    const POLICY: &str = r#"
version: 1
callers:
  - id: order-svc
    identities: [{ type: san_uri, value: "spiffe://test/order-svc" }]
    cognito_client: orders
    allowed_scopes: [api/read]
    default_scopes: [api/read]
    quotas: unlimited
    max_token_lifetime_seconds: 3600
"#;

    /// Cognito cannot be reached (nothing listens on its port) and the breaker opens after two failed attempts:
    /// the request whose attempts open it is an upstream error, and the next one, refused without an attempt, is
    /// also counted as `BreakerOpen` on the first line, next to the stack's dimension.
    #[tokio::test]
    async fn a_request_the_open_breaker_refuses_is_counted_as_breaker_open() {
        let policy = tb_devkit::fixtures::write_policy(POLICY);
        let mut cfg = Config::read(&Env::from_pairs([
            ("POLICY_FILE", policy.path().to_str().unwrap()),
            ("QUOTA_TABLE", "unused-in-memory"),
            ("SSM_PREFIX", "/unused/in-memory"),
            ("BREAKER_FAILURE_THRESHOLD", "2"),
            ("STACK_NAME", "tb-breaker-test"),
        ]))
        .unwrap();
        cfg.upstream.breaker_open_for = Duration::from_secs(60);
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let creds = MemoryCredentialSource::new();
        creds.insert(
            "orders",
            ClientCredentials::token_endpoint(
                "orders-client",
                secrecy::SecretString::from("orders-secret".to_owned()),
                format!("http://127.0.0.1:{port}/oauth2/token").parse().unwrap(),
            ),
        );
        let emf = CaptureWriter::default();
        let deps = Deps {
            quotas: Arc::new(MemoryQuotaStore::new()),
            credentials: Arc::new(creds),
            metrics: MetricsSink::to_writer("T", emf.clone()).with_dimension(STACK_DIMENSION, &cfg.stack_name),
            clock: Clock::system(),
            context_keys: tb_devkit::fixtures::context_keys(),
        };
        let app = build(&cfg, deps).await.unwrap();
        let first_lines = |text: String| -> Vec<Value> {
            text.lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap())
                .filter(|v| v.get("Grants").is_some())
                .collect()
        };
        let send = || {
            let event = tb_devkit::events::proxy_request("order-svc", "grant_type=client_credentials");
            super::handle(&app, tb_devkit::events::lambda_event(event, SystemTime::now() + Duration::from_secs(10)))
        };

        let r = send().await.unwrap();
        assert_eq!(r.status_code, 503);
        let lines = first_lines(emf.contents());
        assert_eq!(lines.len(), 1);
        assert!(lines[0].get(names::BREAKER_OPEN).is_none(), "two failed attempts, none refused: {}", lines[0]);
        assert!(app.upstream.breaker_open());

        emf.clear();
        let r = send().await.unwrap();
        assert_eq!(r.status_code, 503);
        let lines = first_lines(emf.contents());
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0][names::BREAKER_OPEN], 1.0, "{}", lines[0]);
        assert_eq!(lines[0]["Stack"], "tb-breaker-test");
        assert_eq!(lines[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"], serde_json::json!([["Service", "Stack"]]));
    }
}
