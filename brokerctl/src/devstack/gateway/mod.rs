//! What API Gateway (REST, custom domain) does between the TLS handshake and the two Lambdas, in the order it does
//! it, with the settings and gateway responses of `infra/template.yaml`:
//!
//! 0. the custom domain's base path mapping picks the stage: the mTLS domain and the partner domain each have their
//!    own stage with its own throttle, so a flood of unauthenticated partner requests cannot use up the throttle
//!    that certificate callers depend on; on the partner stage, the optional WAF per-IP rate rule (`WAF_FILTERED`
//!    403) comes before anything else;
//! 1. route: only `POST /oauth2/token` exists; anything else is `MISSING_AUTHENTICATION_TOKEN` (404 here);
//! 2. payload limit (10 MB): `REQUEST_TOO_LARGE`;
//! 3. the stage's throttling (token bucket, rate + burst): `THROTTLED` 429, before any Lambda runs;
//! 4. the REQUEST authorizer: identity sources (when caching is on, a missing one is a 401 without calling the
//!    authorizer), the authorizer cache keyed on the identity-source values only (Allow and Deny are cached alike),
//!    else the authorizer event with `requestContext.identity.clientCert` as API Gateway builds it;
//!    `Unauthorized` → `UNAUTHORIZED` 401; the returned IAM policy evaluated against the method ARN (explicit Deny
//!    wins, no matching Allow is a deny) → `ACCESS_DENIED` 403;
//! 5. usage plans (when the method requires an API key, `apiKeySource: AUTHORIZER`): the authorizer's
//!    `usageIdentifierKey` must be a key of the plan (`INVALID_API_KEY` 403), then the plan's per-key rate/burst
//!    (`THROTTLED`) and daily quota (`QUOTA_EXCEEDED`);
//! 6. the proxy event with `requestContext.authorizer` = the context + `principalId` and
//!    `requestContext.identity.clientCert` on the mTLS domain, and the broker's answer passed through.
//!
//! Each function runs as Lambda runs it: with a deadline in its context (its `Timeout` in the template), on its own
//! task so a panic is a failed invocation rather than a dropped connection, and cut at its timeout. A failed or
//! timed-out authorizer is a 500, a failed or timed-out broker a 502, and a broker still running at the integration
//! timeout a 504, each with the template's `DEFAULT_5XX` body.
//!
//! Counters ([`GatewayStats`]) let tests prove what did *not* run (the authorizer on a throttled request, on a
//! cache hit).
//!
//! This module is the pipeline; [`events`] builds the two Lambda events and maps the broker's answer back, [`iam`]
//! evaluates the authorizer's policy document, `throttle` holds the token buckets and the usage plan's quota, and
//! [`waf`] the partner stage's per-IP rate rule.

mod events;
mod iam;
mod throttle;
pub mod waf;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Response};
use serde_json::Value;
use tb_authorizer::App as AuthorizerApp;
use tb_broker::App as BrokerApp;
use tb_shared::sync::lock;

pub use events::client_cert_identity;
pub use iam::{arn_matches, policy_allows};
use throttle::{Bucket, PlanLimits, PlanRefusal, UsagePlan};
pub use waf::IpRateLimit;
use waf::IpRateRule;

/// The AWS account id in the method ARN (any 12 digits; the authorizer only checks the form).
pub const ACCOUNT_ID: &str = "123456789012";
/// The REST API id in the method ARN.
pub const API_ID: &str = "devlocal01";
/// The region in the method ARN.
pub const REGION: &str = "us-east-1";
/// API Gateway's payload limit.
pub const MAX_PAYLOAD: usize = 10 * 1024 * 1024;

/// The gateway responses of `infra/template.yaml` (`x-amazon-apigateway-gateway-responses`); a test keeps these in
/// step with the template.
pub mod responses {
    /// `UNAUTHORIZED` (401).
    pub const UNAUTHORIZED: &str = r#"{"error":"invalid_client","error_description":"client authentication failed","request_id":"$context.requestId"}"#;
    /// `ACCESS_DENIED` and `INVALID_API_KEY` (403): `unauthorized_client`, the token endpoint's code for a client
    /// that may not use this grant (`access_denied` belongs to the authorization endpoint).
    pub const ACCESS_DENIED: &str = r#"{"error":"unauthorized_client","error_description":"this client may not obtain tokens","request_id":"$context.requestId"}"#;
    /// `THROTTLED` (429, Retry-After 1).
    pub const THROTTLED: &str = r#"{"error":"temporarily_unavailable","error_description":"too many requests","request_id":"$context.requestId"}"#;
    /// `QUOTA_EXCEEDED` (429, Retry-After 3600).
    pub const QUOTA_EXCEEDED: &str = r#"{"error":"temporarily_unavailable","error_description":"the request quota for this client is exhausted","request_id":"$context.requestId"}"#;
    /// `MISSING_AUTHENTICATION_TOKEN` (404): any other path or method.
    pub const MISSING_AUTHENTICATION_TOKEN: &str = r#"{"error":"invalid_request","error_description":"the only endpoint is POST /oauth2/token","request_id":"$context.requestId"}"#;
    /// `REQUEST_TOO_LARGE` (413).
    pub const REQUEST_TOO_LARGE: &str = r#"{"error":"invalid_request","error_description":"the request body is too large","request_id":"$context.requestId"}"#;
    /// `WAF_FILTERED` (403): the partner stage's web ACL blocked the request.
    pub const WAF_FILTERED: &str = r#"{"error":"unauthorized_client","error_description":"the request was blocked","request_id":"$context.requestId"}"#;
    /// `DEFAULT_5XX`.
    pub const DEFAULT_5XX: &str = r#"{"error":"server_error","error_description":"the request could not be processed","request_id":"$context.requestId"}"#;
}

/// An identity source of the REQUEST authorizer (what API Gateway builds the cache key from).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentitySource {
    /// `method.request.header.NAME` (case-insensitive).
    Header(String),
}

/// The gateway's settings; the defaults are `infra/template.yaml`'s parameter defaults.
#[derive(Debug, Clone)]
pub struct GatewaySettings {
    /// Name of the mTLS domain's stage (`StageName`, default `v1`).
    pub stage: String,
    /// The mTLS stage's steady-state rate, requests/s (`ThrottlingRateLimit`, 50).
    pub stage_rate: f64,
    /// The mTLS stage's burst (`ThrottlingBurstLimit`, 100).
    pub stage_burst: u32,
    /// Name of the partner domain's stage (`PartnerStageName`).
    pub partner_stage: String,
    /// The partner stage's steady-state rate, requests/s (`PartnerThrottlingRateLimit`): its own bucket, so
    /// partner traffic, authenticated or not, never takes the mTLS stage's tokens.
    pub partner_rate: f64,
    /// The partner stage's burst (`PartnerThrottlingBurstLimit`).
    pub partner_burst: u32,
    /// The partner stage's WAF per-IP rate rule; `None` (the template's default) means no web ACL.
    pub partner_ip_rate_limit: Option<IpRateLimit>,
    /// Whether the method requires an API key from the authorizer's `usageIdentifierKey` (`RequireUsagePlanKey`,
    /// default false: stage throttling only).
    pub require_usage_plan_key: bool,
    /// Per-key rate of the usage plan (`UsagePlanRateLimit`, 10).
    pub usage_plan_rate: f64,
    /// Per-key burst (`UsagePlanBurstLimit`, 20).
    pub usage_plan_burst: u32,
    /// Per-key requests per day (`UsagePlanDailyQuota`, 10000).
    pub usage_plan_daily_quota: u64,
    /// The API keys attached to the usage plan (the policy's `usage_plan_key` values).
    pub usage_plan_keys: Vec<String>,
    /// `authorizerResultTtlInSeconds` (0 in the template: the gateway cache is off, see docs/runbooks/caching.md).
    pub authorizer_cache_ttl: Duration,
    /// The authorizer's identity sources (none in the template, which is only allowed with caching off).
    pub identity_sources: Vec<IdentitySource>,
    /// The authorizer function's `Timeout` (5 s): its Lambda deadline, and when its invocation is cut (500).
    pub authorizer_timeout: Duration,
    /// The broker function's `Timeout` (10 s): its Lambda deadline, and when its invocation is cut (502).
    pub broker_timeout: Duration,
    /// The integration's `timeoutInMillis` (12 s): a broker still running then gets the client a 504.
    pub integration_timeout: Duration,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        GatewaySettings {
            stage: "v1".into(),
            stage_rate: 50.0,
            stage_burst: 100,
            partner_stage: "partner".into(),
            partner_rate: 20.0,
            partner_burst: 40,
            partner_ip_rate_limit: None,
            require_usage_plan_key: false,
            usage_plan_rate: 10.0,
            usage_plan_burst: 20,
            usage_plan_daily_quota: 10_000,
            usage_plan_keys: Vec::new(),
            authorizer_cache_ttl: Duration::ZERO,
            identity_sources: Vec::new(),
            authorizer_timeout: Duration::from_secs(5),
            broker_timeout: Duration::from_secs(10),
            integration_timeout: Duration::from_secs(12),
        }
    }
}

/// How an invocation of a function ended, as Lambda reports it to API Gateway.
#[derive(Debug, PartialEq, Eq)]
pub enum Invocation<T> {
    /// The handler returned (an answer, or the error it chose, such as the authorizer's `Unauthorized`).
    Returned(T),
    /// The handler panicked: Lambda reports a failed invocation, the gateway answers 5XX.
    Panicked,
    /// The handler was still running at the timeout: Lambda stops it, the gateway answers 5XX.
    TimedOut,
}

/// Runs a function's handler the way Lambda runs one invocation: on a task of its own, so that a panic ends the
/// invocation and not the client's connection, and stopped at `timeout`.
pub async fn invoke<T: Send + 'static>(
    timeout: Duration,
    handler: impl Future<Output = T> + Send + 'static,
) -> Invocation<T> {
    let mut task = tokio::spawn(handler);
    match tokio::time::timeout(timeout, &mut task).await {
        Ok(Ok(out)) => Invocation::Returned(out),
        Ok(Err(_)) => Invocation::Panicked,
        Err(_) => {
            task.abort();
            Invocation::TimedOut
        }
    }
}

/// The Lambda context of one invocation of `function`: a request id of its own and the deadline `timeout` from now,
/// which the handler reads as Lambda's.
fn lambda_context(function: &str, timeout: Duration) -> lambda_runtime::Context {
    let mut ctx = lambda_runtime::Context::default();
    ctx.request_id = request_id();
    ctx.deadline = (std::time::SystemTime::now() + timeout)
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    ctx.invoked_function_arn = format!("arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:token-broker-dev-{function}");
    ctx
}

/// What the gateway did, for tests and the stack's status line.
#[derive(Debug, Default)]
pub struct GatewayStats {
    pub requests: AtomicU64,
    pub authorizer_calls: AtomicU64,
    pub authorizer_cache_hits: AtomicU64,
    pub broker_calls: AtomicU64,
    /// Requests either stage's throttle refused (the sum of the two counters below).
    pub stage_throttled: AtomicU64,
    /// Requests the mTLS stage's throttle refused.
    pub mtls_stage_throttled: AtomicU64,
    /// Requests the partner stage's throttle refused.
    pub partner_stage_throttled: AtomicU64,
    /// Requests the partner stage's WAF rule blocked.
    pub waf_filtered: AtomicU64,
    pub usage_plan_throttled: AtomicU64,
    pub quota_exceeded: AtomicU64,
    pub unauthorized: AtomicU64,
    pub denied: AtomicU64,
}

impl GatewayStats {
    fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
    /// Reads one counter.
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

/// A cached authorizer answer: the JSON API Gateway received, and when it stops being served.
struct CachedAnswer {
    answer: Value,
    until: Instant,
}

/// Which custom domain a request arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Domain {
    /// The mutual-TLS domain (client certificate required at the handshake).
    Mtls,
    /// The partner domain (no client certificate).
    Partner,
}

/// What the TLS layer learnt about one connection.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub domain: Domain,
    /// The client's leaf certificate (DER), on the mTLS domain.
    pub client_cert: Option<Arc<Vec<u8>>>,
}

/// The emulated gateway.
pub struct Gateway {
    settings: GatewaySettings,
    authorizer: Arc<AuthorizerApp>,
    broker: Arc<BrokerApp>,
    stats: Arc<GatewayStats>,
    mtls_bucket: Mutex<Bucket>,
    partner_bucket: Mutex<Bucket>,
    partner_waf: Option<IpRateRule>,
    usage_plan: UsagePlan,
    cache: Mutex<HashMap<Vec<String>, CachedAnswer>>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").field("settings", &self.settings).finish_non_exhaustive()
    }
}

type HttpResponse = Response<http_body_util::Full<Bytes>>;

/// A request id in API Gateway's form (a UUID).
fn request_id() -> String {
    let b: [u8; 16] = rand::random();
    let h = hex::encode(b);
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// A gateway response: the template's body with `$context.requestId` filled in, `no-store` headers.
fn gateway_response(status: u16, template: &str, request_id: &str, extra: &[(&str, &str)]) -> HttpResponse {
    let body = template.replace("$context.requestId", request_id);
    let mut b = Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("cache-control", "no-store")
        .header("pragma", "no-cache")
        .header("x-amzn-requestid", request_id);
    for (k, v) in extra {
        b = b.header(*k, *v);
    }
    b.body(http_body_util::Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| Response::new(http_body_util::Full::new(Bytes::new())))
}

/// The `UNAUTHORIZED` gateway response.
fn unauthorized(rid: &str) -> HttpResponse {
    gateway_response(401, responses::UNAUTHORIZED, rid, &[("www-authenticate", "Bearer realm=\"token-broker\"")])
}

impl Gateway {
    /// A gateway in front of the two handlers.
    pub fn new(
        settings: GatewaySettings,
        authorizer: Arc<AuthorizerApp>,
        broker: Arc<BrokerApp>,
        stats: Arc<GatewayStats>,
    ) -> Self {
        Gateway {
            mtls_bucket: Mutex::new(Bucket::new(settings.stage_burst)),
            partner_bucket: Mutex::new(Bucket::new(settings.partner_burst)),
            partner_waf: settings.partner_ip_rate_limit.map(IpRateRule::new),
            settings,
            authorizer,
            broker,
            stats,
            usage_plan: UsagePlan::default(),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The stage a custom domain's base path mapping points at.
    pub fn stage(&self, domain: Domain) -> &str {
        match domain {
            Domain::Mtls => &self.settings.stage,
            Domain::Partner => &self.settings.partner_stage,
        }
    }

    /// The method ARN of the token method on `stage`.
    pub fn method_arn(stage: &str) -> String {
        format!("arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{API_ID}/{stage}/POST/oauth2/token")
    }

    /// Takes a token from the bucket of `domain`'s stage, or counts the refusal.
    fn stage_admits(&self, domain: Domain) -> bool {
        let s = &self.settings;
        let (bucket, rate, burst, refused) = match domain {
            Domain::Mtls => (&self.mtls_bucket, s.stage_rate, s.stage_burst, &self.stats.mtls_stage_throttled),
            Domain::Partner => {
                (&self.partner_bucket, s.partner_rate, s.partner_burst, &self.stats.partner_stage_throttled)
            }
        };
        let admitted = lock(bucket).take(rate, burst, Instant::now());
        if !admitted {
            GatewayStats::bump(refused);
            GatewayStats::bump(&self.stats.stage_throttled);
        }
        admitted
    }

    /// Handles one HTTP request that passed the TLS handshake.
    pub async fn handle(&self, req: http::Request<Bytes>, conn: &ConnInfo) -> HttpResponse {
        let rid = request_id();
        GatewayStats::bump(&self.stats.requests);
        // The web ACL sees the request before API Gateway does: a blocked IP reaches neither the route nor the
        // throttle nor the authorizer.
        if let (Domain::Partner, Some(rule)) = (conn.domain, &self.partner_waf) {
            if !rule.admit(conn.peer.ip(), Instant::now()) {
                GatewayStats::bump(&self.stats.waf_filtered);
                return gateway_response(403, responses::WAF_FILTERED, &rid, &[]);
            }
        }
        let path = req.uri().path().to_owned();
        if path != "/oauth2/token" || req.method() != Method::POST {
            return gateway_response(404, responses::MISSING_AUTHENTICATION_TOKEN, &rid, &[]);
        }
        if req.body().len() > MAX_PAYLOAD {
            return gateway_response(413, responses::REQUEST_TOO_LARGE, &rid, &[]);
        }
        if !self.stage_admits(conn.domain) {
            return gateway_response(429, responses::THROTTLED, &rid, &[("retry-after", "1")]);
        }

        let stage = self.stage(conn.domain);
        let method_arn = Self::method_arn(stage);
        let answer = match self.authorize(&req, conn, &rid, stage, &method_arn).await {
            Ok(a) => a,
            Err(resp) => return resp,
        };
        if !policy_allows(&answer, &method_arn) {
            GatewayStats::bump(&self.stats.denied);
            return gateway_response(403, responses::ACCESS_DENIED, &rid, &[]);
        }
        if self.settings.require_usage_plan_key {
            if let Err(resp) = self.usage_plan(&answer, &rid) {
                return *resp;
            }
        }
        self.integrate(req, conn, &rid, stage, &answer).await
    }

    /// Identity sources, the authorizer cache, then the authorizer itself: its answer as JSON, or the 401.
    async fn authorize(
        &self,
        req: &http::Request<Bytes>,
        conn: &ConnInfo,
        rid: &str,
        stage: &str,
        method_arn: &str,
    ) -> Result<Value, HttpResponse> {
        let ttl = self.settings.authorizer_cache_ttl;
        // Each stage caches its own answers: an answer's policy names its stage's method ARN.
        let mut key = vec![stage.to_owned()];
        for src in &self.settings.identity_sources {
            let IdentitySource::Header(name) = src;
            match req.headers().get(name.as_str()).and_then(|v| v.to_str().ok()).filter(|v| !v.is_empty()) {
                Some(v) => key.push(v.to_owned()),
                None => {
                    // API Gateway answers 401 without calling the authorizer when an identity source is missing.
                    GatewayStats::bump(&self.stats.unauthorized);
                    return Err(unauthorized(rid));
                }
            }
        }
        let caching = !ttl.is_zero() && !self.settings.identity_sources.is_empty();
        if caching {
            let now = Instant::now();
            let mut cache = lock(&self.cache);
            match cache.get(&key) {
                Some(hit) if hit.until > now => {
                    GatewayStats::bump(&self.stats.authorizer_cache_hits);
                    return Ok(hit.answer.clone());
                }
                Some(_) => {
                    cache.remove(&key);
                }
                None => {}
            }
        }

        let event = events::authorizer_event(stage, req, conn, rid, method_arn);
        GatewayStats::bump(&self.stats.authorizer_calls);
        let timeout = self.settings.authorizer_timeout;
        let event = lambda_runtime::LambdaEvent::new(event, lambda_context("authorizer", timeout));
        let app = self.authorizer.clone();
        match invoke(timeout, async move { tb_authorizer::handle(&app, event).await }).await {
            Invocation::Returned(Ok(resp)) => {
                let answer = serde_json::to_value(&resp).unwrap_or(Value::Null);
                if caching {
                    lock(&self.cache).insert(key, CachedAnswer { answer: answer.clone(), until: Instant::now() + ttl });
                }
                Ok(answer)
            }
            Invocation::Returned(Err(_)) => {
                GatewayStats::bump(&self.stats.unauthorized);
                Err(unauthorized(rid))
            }
            // AUTHORIZER_CONFIGURATION_ERROR / AUTHORIZER_FAILURE: the template leaves them to DEFAULT_5XX.
            Invocation::Panicked | Invocation::TimedOut => Err(gateway_response(500, responses::DEFAULT_5XX, rid, &[])),
        }
    }

    /// The usage plan: the authorizer's `usageIdentifierKey` must be a key of the plan, within its rate and quota.
    fn usage_plan(&self, answer: &Value, rid: &str) -> Result<(), Box<HttpResponse>> {
        let key = answer.get("usageIdentifierKey").and_then(Value::as_str).unwrap_or("");
        if key.is_empty() || !self.settings.usage_plan_keys.iter().any(|k| k == key) {
            GatewayStats::bump(&self.stats.denied);
            return Err(Box::new(gateway_response(403, responses::ACCESS_DENIED, rid, &[])));
        }
        let limits = PlanLimits {
            rate: self.settings.usage_plan_rate,
            burst: self.settings.usage_plan_burst,
            daily_quota: self.settings.usage_plan_daily_quota,
        };
        match self.usage_plan.admit(key, limits) {
            Ok(()) => Ok(()),
            Err(PlanRefusal::Throttled) => {
                GatewayStats::bump(&self.stats.usage_plan_throttled);
                Err(Box::new(gateway_response(429, responses::THROTTLED, rid, &[("retry-after", "1")])))
            }
            Err(PlanRefusal::QuotaExceeded) => {
                GatewayStats::bump(&self.stats.quota_exceeded);
                Err(Box::new(gateway_response(429, responses::QUOTA_EXCEEDED, rid, &[("retry-after", "3600")])))
            }
        }
    }

    /// The proxy integration: the broker's answer passed through; a 502 when the broker fails (an error, a panic,
    /// its own timeout), a 504 when it is still running at the integration timeout.
    async fn integrate(
        &self,
        req: http::Request<Bytes>,
        conn: &ConnInfo,
        rid: &str,
        stage: &str,
        answer: &Value,
    ) -> HttpResponse {
        let bad_gateway = || gateway_response(502, responses::DEFAULT_5XX, rid, &[]);
        let json = events::proxy_event_json(stage, req, conn, rid, answer);
        // The payload reaches the function as JSON, read into the handler's event type as the runtime reads it.
        let Ok(ev) = serde_json::from_value(json) else { return bad_gateway() };
        GatewayStats::bump(&self.stats.broker_calls);
        let (function, integration) = (self.settings.broker_timeout, self.settings.integration_timeout);
        let event = lambda_runtime::LambdaEvent::new(ev, lambda_context("broker", function));
        let broker = self.broker.clone();
        match invoke(function.min(integration), async move { tb_broker::handle(&broker, event).await }).await {
            Invocation::Returned(Ok(out)) => events::proxy_response(out, rid).unwrap_or_else(bad_gateway),
            Invocation::TimedOut if integration <= function => gateway_response(504, responses::DEFAULT_5XX, rid, &[]),
            Invocation::Returned(Err(_)) | Invocation::Panicked | Invocation::TimedOut => bad_gateway(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_invocation_returns_panics_or_times_out_as_in_lambda() {
        assert_eq!(invoke(Duration::from_secs(5), async { 7 }).await, Invocation::Returned(7));
        let panics = async {
            if std::hint::black_box(true) {
                panic!("a handler bug");
            }
            7
        };
        assert_eq!(invoke(Duration::from_secs(5), panics).await, Invocation::Panicked);
        let slow = async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            7
        };
        let started = Instant::now();
        assert_eq!(invoke(Duration::from_millis(50), slow).await, Invocation::TimedOut);
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn the_context_carries_the_functions_deadline() {
        let before = std::time::SystemTime::now();
        let ctx = lambda_context("broker", Duration::from_secs(10));
        let deadline = std::time::UNIX_EPOCH + Duration::from_millis(ctx.deadline);
        let left = deadline.duration_since(before).unwrap();
        assert!(left > Duration::from_secs(9) && left <= Duration::from_secs(11), "{left:?}");
        assert!(!ctx.request_id.is_empty() && ctx.invoked_function_arn.ends_with("function:token-broker-dev-broker"));
    }
}
