//! What API Gateway (REST, custom domain) does between the TLS handshake and the two Lambdas, in the order it does
//! it, with the settings and gateway responses of `infra/template.yaml`:
//!
//! 1. route: only `POST /oauth2/token` exists; anything else is `MISSING_AUTHENTICATION_TOKEN` (404 here);
//! 2. payload limit (10 MB): `REQUEST_TOO_LARGE`;
//! 3. stage throttling (token bucket, rate + burst): `THROTTLED` 429, before any Lambda runs;
//! 4. the REQUEST authorizer: identity sources (when caching is on, a missing one is a 401 without calling the
//!    authorizer), the authorizer cache keyed on the identity-source values only (Allow and Deny are cached alike),
//!    else the authorizer event with `requestContext.identity.clientCert` as API Gateway builds it;
//!    `Unauthorized` → `UNAUTHORIZED` 401; the returned IAM policy evaluated against the method ARN (explicit Deny
//!    wins, no matching Allow is a deny) → `ACCESS_DENIED` 403;
//! 5. usage plans (when the method requires an API key, `apiKeySource: AUTHORIZER`): the authorizer's
//!    `usageIdentifierKey` must be a key of the plan (`INVALID_API_KEY` 403), then the plan's per-key rate/burst
//!    (`THROTTLED`) and daily quota (`QUOTA_EXCEEDED`);
//! 6. the proxy event with `requestContext.authorizer` = the context + `principalId`, and the broker's answer
//!    passed through.
//!
//! Counters ([`GatewayStats`]) let tests prove what did *not* run (the authorizer on a throttled request, on a
//! cache hit).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerRequestTypeRequest, ApiGatewayCustomAuthorizerRequestTypeRequestContext,
    ApiGatewayCustomAuthorizerRequestTypeRequestIdentity,
    ApiGatewayCustomAuthorizerRequestTypeRequestIdentityClientCert,
    ApiGatewayCustomAuthorizerRequestTypeRequestIdentityClientCertValidity, ApiGatewayProxyRequest,
    ApiGatewayProxyRequestContext, ApiGatewayRequestIdentity,
};
use aws_lambda_events::encodings::Body as LambdaBody;
use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};
use serde_json::Value;
use tb_authorizer::handler::App as AuthorizerApp;
use tb_broker::Broker;

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
    /// `ACCESS_DENIED` and `INVALID_API_KEY` (403).
    pub const ACCESS_DENIED: &str = r#"{"error":"access_denied","error_description":"this client may not obtain tokens","request_id":"$context.requestId"}"#;
    /// `THROTTLED` (429, Retry-After 1).
    pub const THROTTLED: &str = r#"{"error":"temporarily_unavailable","error_description":"too many requests","request_id":"$context.requestId"}"#;
    /// `QUOTA_EXCEEDED` (429, Retry-After 3600).
    pub const QUOTA_EXCEEDED: &str = r#"{"error":"temporarily_unavailable","error_description":"the request quota for this client is exhausted","request_id":"$context.requestId"}"#;
    /// `MISSING_AUTHENTICATION_TOKEN` (404): any other path or method.
    pub const MISSING_AUTHENTICATION_TOKEN: &str = r#"{"error":"invalid_request","error_description":"the only endpoint is POST /oauth2/token","request_id":"$context.requestId"}"#;
    /// `REQUEST_TOO_LARGE` (413).
    pub const REQUEST_TOO_LARGE: &str = r#"{"error":"invalid_request","error_description":"the request body is too large","request_id":"$context.requestId"}"#;
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
    /// Stage name (`StageName`, default `v1`).
    pub stage: String,
    /// Stage steady-state rate, requests/s (`ThrottlingRateLimit`, 50).
    pub stage_rate: f64,
    /// Stage burst (`ThrottlingBurstLimit`, 100).
    pub stage_burst: u32,
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
}

impl Default for GatewaySettings {
    fn default() -> Self {
        GatewaySettings {
            stage: "v1".into(),
            stage_rate: 50.0,
            stage_burst: 100,
            require_usage_plan_key: false,
            usage_plan_rate: 10.0,
            usage_plan_burst: 20,
            usage_plan_daily_quota: 10_000,
            usage_plan_keys: Vec::new(),
            authorizer_cache_ttl: Duration::ZERO,
            identity_sources: Vec::new(),
        }
    }
}

/// What the gateway did, for tests and the stack's status line.
#[derive(Debug, Default)]
pub struct GatewayStats {
    pub requests: AtomicU64,
    pub authorizer_calls: AtomicU64,
    pub authorizer_cache_hits: AtomicU64,
    pub broker_calls: AtomicU64,
    pub stage_throttled: AtomicU64,
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

/// A token bucket: `rate` tokens/s up to `burst`.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn new(burst: u32) -> Self {
        Bucket { tokens: f64::from(burst), last: Instant::now() }
    }
    fn take(&mut self, rate: f64, burst: u32, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * rate).min(f64::from(burst));
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
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
    broker: Arc<Broker>,
    stats: Arc<GatewayStats>,
    stage_bucket: Mutex<Bucket>,
    plan_buckets: Mutex<HashMap<String, Bucket>>,
    plan_daily: Mutex<HashMap<(String, u64), u64>>,
    cache: Mutex<HashMap<Vec<String>, CachedAnswer>>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").field("settings", &self.settings).finish_non_exhaustive()
    }
}

type HttpResponse = Response<http_body_util::Full<Bytes>>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

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

/// `Mon DD HH:MM:SS YYYY GMT`, the form API Gateway uses for `clientCert.validity`.
fn gmt(ts: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(ts) {
        Ok(t) => {
            let month = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
                [usize::from(u8::from(t.month())) - 1];
            format!("{month} {:>2} {:02}:{:02}:{:02} {} GMT", t.day(), t.hour(), t.minute(), t.second(), t.year())
        }
        Err(_) => String::new(),
    }
}

/// `clientCert` as API Gateway fills it: the PEM of the leaf and what it parsed from it.
pub fn client_cert_identity(der: &[u8]) -> ApiGatewayCustomAuthorizerRequestTypeRequestIdentityClientCert {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(chunk));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    let mut cc = ApiGatewayCustomAuthorizerRequestTypeRequestIdentityClientCert::default();
    cc.client_cert_pem = Some(pem);
    if let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) {
        cc.subject_dn = Some(cert.subject().to_string());
        cc.issuer_dn = Some(cert.issuer().to_string());
        cc.serial_number = Some(cert.raw_serial_as_string());
        let mut v = ApiGatewayCustomAuthorizerRequestTypeRequestIdentityClientCertValidity::default();
        v.not_before = Some(gmt(cert.validity().not_before.timestamp()));
        v.not_after = Some(gmt(cert.validity().not_after.timestamp()));
        cc.validity = v;
    }
    cc
}

/// `*` matches any run of characters (IAM's wildcard in execute-api resources); everything else literally.
pub fn arn_matches(pattern: &str, arn: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == arn;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !arn.starts_with(first) || arn.len() < first.len() + last.len() || !arn.ends_with(last) {
        return false;
    }
    let mut rest = &arn[first.len()..arn.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// Evaluates an authorizer's policy document for `execute-api:Invoke` on `method_arn` as IAM does: an explicit
/// Deny wins, otherwise an Allow must match, otherwise it is denied.
pub fn policy_allows(answer: &Value, method_arn: &str) -> bool {
    let Some(statements) = answer.pointer("/policyDocument/Statement").and_then(Value::as_array) else {
        return false;
    };
    let as_list = |v: Option<&Value>| -> Vec<String> {
        match v {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect(),
            _ => Vec::new(),
        }
    };
    let mut allowed = false;
    for s in statements {
        let actions = as_list(s.get("Action"));
        let action_ok = actions.iter().any(|a| arn_matches(a, "execute-api:Invoke"));
        let resource_ok = as_list(s.get("Resource")).iter().any(|r| arn_matches(r, method_arn));
        if !(action_ok && resource_ok) {
            continue;
        }
        match s.get("Effect").and_then(Value::as_str) {
            Some("Deny") => return false,
            Some("Allow") => allowed = true,
            _ => {}
        }
    }
    allowed
}

fn headers_for_event(h: &HeaderMap) -> (HeaderMap, HeaderMap) {
    // API Gateway's `headers` keeps the last value of a repeated header; `multiValueHeaders` keeps all.
    let mut single = HeaderMap::new();
    for (k, v) in h {
        single.insert(k.clone(), v.clone());
    }
    (single, h.clone())
}

fn query_map(uri: &http::Uri) -> (aws_lambda_events::query_map::QueryMap, aws_lambda_events::query_map::QueryMap) {
    let mut all: HashMap<String, Vec<String>> = HashMap::new();
    if let Some(q) = uri.query() {
        for (k, v) in form_urlencoded::parse(q.as_bytes()) {
            all.entry(k.into_owned()).or_default().push(v.into_owned());
        }
    }
    let single: HashMap<String, String> =
        all.iter().filter_map(|(k, v)| v.last().map(|last| (k.clone(), last.clone()))).collect();
    (single.into(), all.into())
}

impl Gateway {
    /// A gateway in front of the two handlers.
    pub fn new(
        settings: GatewaySettings,
        authorizer: Arc<AuthorizerApp>,
        broker: Arc<Broker>,
        stats: Arc<GatewayStats>,
    ) -> Self {
        let burst = settings.stage_burst;
        Gateway {
            settings,
            authorizer,
            broker,
            stats,
            stage_bucket: Mutex::new(Bucket::new(burst)),
            plan_buckets: Mutex::new(HashMap::new()),
            plan_daily: Mutex::new(HashMap::new()),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The method ARN of the token method on this stage.
    pub fn method_arn(&self) -> String {
        format!("arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{API_ID}/{}/POST/oauth2/token", self.settings.stage)
    }

    /// Handles one HTTP request that passed the TLS handshake.
    pub async fn handle(&self, req: http::Request<Bytes>, conn: &ConnInfo) -> HttpResponse {
        let rid = request_id();
        GatewayStats::bump(&self.stats.requests);
        let path = req.uri().path().to_owned();
        if path != "/oauth2/token" || req.method() != Method::POST {
            return gateway_response(404, responses::MISSING_AUTHENTICATION_TOKEN, &rid, &[]);
        }
        if req.body().len() > MAX_PAYLOAD {
            return gateway_response(413, responses::REQUEST_TOO_LARGE, &rid, &[]);
        }
        let admitted =
            lock(&self.stage_bucket).take(self.settings.stage_rate, self.settings.stage_burst, Instant::now());
        if !admitted {
            GatewayStats::bump(&self.stats.stage_throttled);
            return gateway_response(429, responses::THROTTLED, &rid, &[("retry-after", "1")]);
        }

        let method_arn = self.method_arn();
        let answer = match self.authorize(&req, conn, &rid, &method_arn).await {
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
        self.integrate(req, conn, &rid, &answer).await
    }

    async fn authorize(
        &self,
        req: &http::Request<Bytes>,
        conn: &ConnInfo,
        rid: &str,
        method_arn: &str,
    ) -> Result<Value, HttpResponse> {
        let ttl = self.settings.authorizer_cache_ttl;
        let mut key = Vec::new();
        for src in &self.settings.identity_sources {
            let IdentitySource::Header(name) = src;
            match req.headers().get(name.as_str()).and_then(|v| v.to_str().ok()).filter(|v| !v.is_empty()) {
                Some(v) => key.push(v.to_owned()),
                None => {
                    // API Gateway answers 401 without calling the authorizer when an identity source is missing.
                    GatewayStats::bump(&self.stats.unauthorized);
                    return Err(gateway_response(
                        401,
                        responses::UNAUTHORIZED,
                        rid,
                        &[("www-authenticate", "Bearer realm=\"token-broker\"")],
                    ));
                }
            }
        }
        let caching = !ttl.is_zero() && !key.is_empty();
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

        let event = self.authorizer_event(req, conn, rid, method_arn);
        GatewayStats::bump(&self.stats.authorizer_calls);
        let result = tb_authorizer::handler::handle_request(&self.authorizer, &event, SystemTime::now()).await;
        match result {
            Ok(resp) => {
                let answer = serde_json::to_value(&resp).unwrap_or(Value::Null);
                if caching {
                    lock(&self.cache).insert(key, CachedAnswer { answer: answer.clone(), until: Instant::now() + ttl });
                }
                Ok(answer)
            }
            Err(_) => {
                GatewayStats::bump(&self.stats.unauthorized);
                Err(gateway_response(
                    401,
                    responses::UNAUTHORIZED,
                    rid,
                    &[("www-authenticate", "Bearer realm=\"token-broker\"")],
                ))
            }
        }
    }

    fn authorizer_event(
        &self,
        req: &http::Request<Bytes>,
        conn: &ConnInfo,
        rid: &str,
        method_arn: &str,
    ) -> ApiGatewayCustomAuthorizerRequestTypeRequest {
        let (headers, multi) = headers_for_event(req.headers());
        let (q, mq) = query_map(req.uri());
        let mut identity = ApiGatewayCustomAuthorizerRequestTypeRequestIdentity::default();
        identity.source_ip = Some(conn.peer.ip().to_string());
        identity.client_cert = conn.client_cert.as_ref().map(|der| client_cert_identity(der));
        let mut ctx = ApiGatewayCustomAuthorizerRequestTypeRequestContext::default();
        ctx.path = Some(format!("/{}/oauth2/token", self.settings.stage));
        ctx.account_id = Some(ACCOUNT_ID.into());
        ctx.resource_id = Some("tokres".into());
        ctx.stage = Some(self.settings.stage.clone());
        ctx.request_id = Some(rid.to_owned());
        ctx.identity = Some(identity);
        ctx.resource_path = Some("/oauth2/token".into());
        ctx.http_method = Some(Method::POST);
        ctx.apiid = Some(API_ID.into());
        let mut ev = ApiGatewayCustomAuthorizerRequestTypeRequest::default();
        ev.type_ = Some("REQUEST".into());
        ev.method_arn = Some(method_arn.to_owned());
        ev.resource = Some("/oauth2/token".into());
        ev.path = Some("/oauth2/token".into());
        ev.http_method = Some(Method::POST);
        ev.headers = headers;
        ev.multi_value_headers = multi;
        ev.query_string_parameters = q;
        ev.multi_value_query_string_parameters = mq;
        ev.request_context = ctx;
        ev
    }

    fn usage_plan(&self, answer: &Value, rid: &str) -> Result<(), Box<HttpResponse>> {
        let key = answer.get("usageIdentifierKey").and_then(Value::as_str).unwrap_or("");
        if key.is_empty() || !self.settings.usage_plan_keys.iter().any(|k| k == key) {
            GatewayStats::bump(&self.stats.denied);
            return Err(Box::new(gateway_response(403, responses::ACCESS_DENIED, rid, &[])));
        }
        let ok = lock(&self.plan_buckets)
            .entry(key.to_owned())
            .or_insert_with(|| Bucket::new(self.settings.usage_plan_burst))
            .take(self.settings.usage_plan_rate, self.settings.usage_plan_burst, Instant::now());
        if !ok {
            GatewayStats::bump(&self.stats.usage_plan_throttled);
            return Err(Box::new(gateway_response(429, responses::THROTTLED, rid, &[("retry-after", "1")])));
        }
        let day = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() / 86_400);
        let mut daily = lock(&self.plan_daily);
        let used = daily.entry((key.to_owned(), day)).or_insert(0);
        if *used >= self.settings.usage_plan_daily_quota {
            GatewayStats::bump(&self.stats.quota_exceeded);
            return Err(Box::new(gateway_response(429, responses::QUOTA_EXCEEDED, rid, &[("retry-after", "3600")])));
        }
        *used += 1;
        Ok(())
    }

    async fn integrate(&self, req: http::Request<Bytes>, conn: &ConnInfo, rid: &str, answer: &Value) -> HttpResponse {
        let (parts, body) = req.into_parts();
        let (headers, multi) = headers_for_event(&parts.headers);
        let (q, mq) = query_map(&parts.uri);
        let mut identity = ApiGatewayRequestIdentity::default();
        identity.source_ip = Some(conn.peer.ip().to_string());
        identity.user_agent = parts.headers.get("user-agent").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let mut ctx = ApiGatewayProxyRequestContext::default();
        ctx.account_id = Some(ACCOUNT_ID.into());
        ctx.resource_id = Some("tokres".into());
        ctx.stage = Some(self.settings.stage.clone());
        ctx.domain_name = parts.headers.get("host").and_then(|v| v.to_str().ok()).map(str::to_owned);
        ctx.request_id = Some(rid.to_owned());
        ctx.protocol = Some("HTTP/1.1".into());
        ctx.identity = identity;
        ctx.resource_path = Some("/oauth2/token".into());
        ctx.path = Some(format!("/{}/oauth2/token", self.settings.stage));
        ctx.http_method = Method::POST;
        ctx.apiid = Some(API_ID.into());
        ctx.request_time_epoch = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        // API Gateway hands the authorizer's context on next to principalId and integrationLatency.
        let mut fields: HashMap<String, Value> = match answer.get("context") {
            Some(Value::Object(m)) => m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            _ => HashMap::new(),
        };
        if let Some(p) = answer.get("principalId") {
            fields.insert("principalId".into(), p.clone());
        }
        fields.insert("integrationLatency".into(), Value::from(0));
        ctx.authorizer.fields = fields;

        let mut ev = ApiGatewayProxyRequest::default();
        ev.resource = Some("/oauth2/token".into());
        ev.path = Some("/oauth2/token".into());
        ev.http_method = Method::POST;
        ev.headers = headers;
        ev.multi_value_headers = multi;
        ev.query_string_parameters = q;
        ev.multi_value_query_string_parameters = mq;
        ev.request_context = ctx;
        // No binary media types on this API: the body arrives as text, or base64 when it is not UTF-8.
        if !body.is_empty() {
            match std::str::from_utf8(&body) {
                Ok(s) => ev.body = Some(s.to_owned()),
                Err(_) => {
                    ev.body = Some(base64::engine::general_purpose::STANDARD.encode(&body));
                    ev.is_base64_encoded = true;
                }
            }
        }

        GatewayStats::bump(&self.stats.broker_calls);
        let event = lambda_runtime::LambdaEvent::new(ev, lambda_runtime::Context::default());
        let out = match tb_broker::handle(event, self.broker.clone()).await {
            Ok(o) => o,
            Err(_) => return gateway_response(502, responses::DEFAULT_5XX, rid, &[]),
        };
        let status = u16::try_from(out.status_code).ok().and_then(|s| StatusCode::from_u16(s).ok());
        let Some(status) = status else {
            return gateway_response(502, responses::DEFAULT_5XX, rid, &[]);
        };
        let body = match out.body {
            Some(LambdaBody::Text(t)) if out.is_base64_encoded => {
                base64::engine::general_purpose::STANDARD.decode(t.as_bytes()).unwrap_or_default()
            }
            Some(LambdaBody::Text(t)) => t.into_bytes(),
            Some(LambdaBody::Binary(b)) => b,
            _ => Vec::new(),
        };
        let mut resp = Response::new(http_body_util::Full::new(Bytes::from(body)));
        *resp.status_mut() = status;
        let h = resp.headers_mut();
        for (k, v) in &out.multi_value_headers {
            h.append(k.clone(), v.clone());
        }
        for (k, v) in &out.headers {
            h.insert(k.clone(), v.clone());
        }
        if let Ok(v) = HeaderValue::from_str(rid) {
            h.insert("x-amzn-requestid", v);
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_like_iam() {
        let arn = "arn:aws:execute-api:us-east-1:123456789012:devlocal01/v1/POST/oauth2/token";
        assert!(arn_matches("arn:aws:execute-api:us-east-1:123456789012:devlocal01/*/POST/oauth2/token", arn));
        assert!(arn_matches("*", arn));
        assert!(!arn_matches("arn:aws:execute-api:us-east-1:123456789012:devlocal01/*/GET/oauth2/token", arn));
        assert!(!arn_matches("arn:aws:execute-api:us-east-1:123456789012:other/*/POST/oauth2/token", arn));
        assert!(arn_matches(arn, arn));
    }

    #[test]
    fn explicit_deny_wins_and_no_match_is_deny() {
        let arn = "arn:aws:execute-api:us-east-1:123456789012:devlocal01/v1/POST/oauth2/token";
        let doc = |effect: &str, res: &str| {
            serde_json::json!({"policyDocument": {"Version": "2012-10-17", "Statement": [
                {"Action": "execute-api:Invoke", "Effect": effect, "Resource": [res]}]}})
        };
        assert!(policy_allows(
            &doc("Allow", "arn:aws:execute-api:us-east-1:123456789012:devlocal01/*/POST/oauth2/token"),
            arn
        ));
        assert!(!policy_allows(
            &doc("Deny", "arn:aws:execute-api:us-east-1:123456789012:devlocal01/*/POST/oauth2/token"),
            arn
        ));
        assert!(!policy_allows(&doc("Allow", "arn:aws:execute-api:us-east-1:123456789012:devlocal01/*/GET/x"), arn));
        let both = serde_json::json!({"policyDocument": {"Statement": [
            {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": "*"},
            {"Action": "*", "Effect": "Deny", "Resource": arn}]}});
        assert!(!policy_allows(&both, arn));
    }

    #[test]
    fn buckets_refill_at_rate_up_to_burst() {
        let mut b = Bucket::new(2);
        let t0 = Instant::now();
        assert!(b.take(1.0, 2, t0));
        assert!(b.take(1.0, 2, t0));
        assert!(!b.take(1.0, 2, t0));
        assert!(b.take(1.0, 2, t0 + Duration::from_millis(1100)));
        assert!(!b.take(1.0, 2, t0 + Duration::from_millis(1100)));
    }

    #[test]
    fn validity_is_in_api_gateways_format() {
        assert_eq!(gmt(1_559_046_602), "May 28 12:30:02 2019 GMT");
    }
}
