//! NOT FOR PRODUCTION. The events API Gateway hands the broker, built the way the REST API builds them, so tests,
//! examples and benchmarks do not each keep their own copy.
//!
//! [`proxy_request`] is the usual case: `POST /oauth2/token` with a form body, after the authorizer allowed a caller
//! by its client certificate. Its context carries the authorizer's MAC, made with the test key of
//! [`crate::fixtures::context_key_set`] for the event's own API id and stage ([`API_ID`], [`STAGE`]), valid for five
//! minutes from when the event is built; a broker built with [`crate::fixtures::context_keys`] accepts it.
//! [`ProxyRequestBuilder`] varies it (how the caller authenticated, the policy version, headers, the request id,
//! another key set, no MAC, no authorizer context at all); [`lambda_event`] wraps an event with a Lambda deadline
//! for an in-process handler call.
//!
//! The REQUEST authorizer events come from two JSON fixtures in `devkit/fixtures/` (API Gateway's documented shape,
//! with the certificate PEM or the token left as a placeholder): [`authorizer_mtls`], [`authorizer_jwt`] and
//! [`authorizer_no_credentials`] fill them in, as JSON for a process under the Runtime API emulator or typed (the
//! `_event` variants) for an in-process handler call.
//!
//! ```
//! use tb_devkit::events::{proxy_request, ProxyRequestBuilder};
//! use tb_shared::context::{sign, ApiBinding, AuthMethod, CallerContext, KeySet};
//!
//! let request = proxy_request("reporting", "grant_type=client_credentials");
//! let ctx = CallerContext::from_map(&request.request_context.authorizer.fields).unwrap();
//! assert_eq!(ctx.caller_id.to_string(), "reporting");
//!
//! let partner = ProxyRequestBuilder::new("partner-sync", "grant_type=client_credentials")
//!     .auth_method(AuthMethod::Jwt)
//!     .header("authorization", "Bearer not-a-real-token")
//!     .build();
//! assert_eq!(partner.headers["authorization"], "Bearer not-a-real-token");
//! ```

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::apigw::ApiGatewayCustomAuthorizerRequestTypeRequest;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyRequestContext, ApiGatewayRequestIdentity};
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::Value;
use tb_shared::context::{sign, ApiBinding, AuthMethod, CallerContext, KeySet};
use tb_shared::ids::CallerId;

/// API Gateway's REQUEST authorizer event for `POST /oauth2/token` on the mTLS domain, with `__PEM__` where the
/// client certificate's PEM goes.
pub const AUTHORIZER_MTLS_FIXTURE: &str = include_str!("../fixtures/authorizer-request-mtls.json");
/// The same for the partner domain, with `Authorization: Bearer __TOKEN__`.
pub const AUTHORIZER_JWT_FIXTURE: &str = include_str!("../fixtures/authorizer-request-jwt.json");

/// The REQUEST authorizer event (JSON) for a caller presenting the client certificate `pem`.
pub fn authorizer_mtls(pem: &str) -> Value {
    let json = AUTHORIZER_MTLS_FIXTURE.replace("__PEM__", &pem.replace('\n', "\\n"));
    serde_json::from_str(&json).expect("the mTLS fixture is JSON")
}

/// The REQUEST authorizer event (JSON) for a partner presenting `token` as a bearer token.
pub fn authorizer_jwt(token: &str) -> Value {
    let json = serde_json::to_string(token).expect("a string serialises");
    let json = AUTHORIZER_JWT_FIXTURE.replace("\"Bearer __TOKEN__\"", &format!("\"Bearer {}", &json[1..]));
    serde_json::from_str(&json).expect("the JWT fixture is JSON")
}

/// The REQUEST authorizer event (JSON) of a request with no client certificate and no token.
pub fn authorizer_no_credentials() -> Value {
    let mut e = authorizer_mtls("");
    e["requestContext"]["identity"]["clientCert"] = Value::Null;
    e
}

/// [`authorizer_mtls`], typed.
pub fn authorizer_mtls_event(pem: &str) -> ApiGatewayCustomAuthorizerRequestTypeRequest {
    serde_json::from_value(authorizer_mtls(pem)).expect("the mTLS fixture is an authorizer event")
}

/// [`authorizer_jwt`], typed.
pub fn authorizer_jwt_event(token: &str) -> ApiGatewayCustomAuthorizerRequestTypeRequest {
    serde_json::from_value(authorizer_jwt(token)).expect("the JWT fixture is an authorizer event")
}

/// The broker's one route.
pub const TOKEN_PATH: &str = "/oauth2/token";
/// The content type of a token request body.
pub const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";
/// The credential fingerprint the events carry unless [`ProxyRequestBuilder::credential_fingerprint`] sets another.
pub const DEFAULT_FINGERPRINT: &str = "9f86d081884c7d65";
/// The policy version the events carry unless [`ProxyRequestBuilder::policy_version`] sets another.
pub const DEFAULT_POLICY_VERSION: &str = "0123456789abcdef";

/// The host name and client address the events come from (documentation ranges, nothing real).
const HOST: &str = "tokens.example.internal";
const SOURCE_IP: &str = "203.0.113.7";
const USER_AGENT: &str = "curl/8.5.0";
const ACCOUNT_ID: &str = "123456789012";
/// The REST API id the events carry in `requestContext.apiId`, and the one their context MAC is made for.
pub const API_ID: &str = "a1b2c3d4e5";
/// The stage the events carry in `requestContext.stage`, and the one their context MAC is made for.
pub const STAGE: &str = "prod";
/// Lifetime of the events' context MAC (the authorizer's default `CONTEXT_MAC_TTL_SECONDS`).
pub const CONTEXT_MAC_TTL: Duration = Duration::from_secs(300);

/// The proxy event for `POST /oauth2/token` with `body` after the authorizer allowed `caller` by mutual TLS: the
/// caller context in `requestContext.authorizer` exactly as `tb_shared::context` writes it, next to the
/// `principalId` and `integrationLatency` API Gateway adds. Panics if `caller` is not a valid caller id.
pub fn proxy_request(caller: &str, body: &str) -> ApiGatewayProxyRequest {
    ProxyRequestBuilder::new(caller, body).build()
}

/// `event` as a Lambda invocation whose deadline is `deadline`, for calling a handler in process.
pub fn lambda_event<T>(event: T, deadline: SystemTime) -> LambdaEvent<T> {
    let mut ctx = Context::default();
    ctx.deadline = deadline.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    LambdaEvent::new(event, ctx)
}

/// A variation of [`proxy_request`]. Headers are those a client behind API Gateway's custom domain arrives with
/// (`accept`, `content-type` form, `host`, `user-agent`, `x-amzn-trace-id`, `x-forwarded-*`), each also in
/// `multiValueHeaders` as API Gateway sends it.
#[derive(Debug, Clone)]
pub struct ProxyRequestBuilder {
    context: Option<CallerContext>,
    body: String,
    headers: Vec<(String, String)>,
    request_id: Option<String>,
    /// The keys the context's MAC is made with; `None` for a context without one.
    mac_keys: Option<Arc<KeySet>>,
}

impl ProxyRequestBuilder {
    /// The event [`proxy_request`] builds. Panics if `caller` is not a valid caller id.
    pub fn new(caller: &str, body: &str) -> Self {
        let caller_id = CallerId::try_from(caller).unwrap_or_else(|e| panic!("caller id {caller:?}: {e}"));
        let context = CallerContext {
            caller_id,
            auth_method: AuthMethod::Mtls,
            credential_fingerprint: DEFAULT_FINGERPRINT.to_owned(),
            policy_version: DEFAULT_POLICY_VERSION.to_owned(),
        };
        let trace = "Root=1-67891233-abcdef012345678912345678";
        let headers = [
            ("accept", "application/json"),
            ("content-type", FORM_CONTENT_TYPE),
            ("host", HOST),
            ("user-agent", USER_AGENT),
            ("x-amzn-trace-id", trace),
            ("x-forwarded-for", SOURCE_IP),
            ("x-forwarded-port", "443"),
            ("x-forwarded-proto", "https"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .to_vec();
        ProxyRequestBuilder {
            context: Some(context),
            body: body.to_owned(),
            headers,
            request_id: None,
            mac_keys: Some(Arc::new(crate::fixtures::context_key_set())),
        }
    }

    /// How the authorizer says the caller authenticated (default mutual TLS).
    pub fn auth_method(mut self, method: AuthMethod) -> Self {
        if let Some(c) = self.context.as_mut() {
            c.auth_method = method;
        }
        self
    }

    /// The credential fingerprint in the context (default [`DEFAULT_FINGERPRINT`]).
    pub fn credential_fingerprint(mut self, fingerprint: &str) -> Self {
        if let Some(c) = self.context.as_mut() {
            c.credential_fingerprint = fingerprint.to_owned();
        }
        self
    }

    /// The policy version the authorizer decided with (default [`DEFAULT_POLICY_VERSION`]).
    pub fn policy_version(mut self, version: &str) -> Self {
        if let Some(c) = self.context.as_mut() {
            c.policy_version = version.to_owned();
        }
        self
    }

    /// No `requestContext.authorizer` at all: a request that did not pass the authorizer (a misconfigured gateway).
    pub fn without_authorizer(mut self) -> Self {
        self.context = None;
        self
    }

    /// The context's MAC made with `keys`' signing key instead of the test key.
    pub fn signed_with(mut self, keys: Arc<KeySet>) -> Self {
        self.mac_keys = Some(keys);
        self
    }

    /// A context without the MAC entries: what a direct invoke that does not know the key would send.
    pub fn unsigned(mut self) -> Self {
        self.mac_keys = None;
        self
    }

    /// Sets header `name` (case-insensitive) to `value`, replacing a default of that name.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        let name = name.to_ascii_lowercase();
        self.headers.retain(|(k, _)| *k != name);
        self.headers.push((name, value.to_owned()));
        self
    }

    /// The request id API Gateway assigned (default: a fresh random one per event).
    pub fn request_id(mut self, id: &str) -> Self {
        self.request_id = Some(id.to_owned());
        self
    }

    /// The event. Panics on a header name or value HTTP does not allow.
    pub fn build(self) -> ApiGatewayProxyRequest {
        let mut headers = HeaderMap::new();
        for (k, v) in &self.headers {
            let name = HeaderName::from_bytes(k.as_bytes()).unwrap_or_else(|e| panic!("header name {k:?}: {e}"));
            let value = HeaderValue::from_str(v).unwrap_or_else(|e| panic!("header {k} value {v:?}: {e}"));
            headers.insert(name, value);
        }

        let mut identity = ApiGatewayRequestIdentity::default();
        identity.source_ip = Some(SOURCE_IP.to_owned());
        identity.user_agent = Some(USER_AGENT.to_owned());

        let mut ctx = ApiGatewayProxyRequestContext::default();
        ctx.account_id = Some(ACCOUNT_ID.to_owned());
        ctx.apiid = Some(API_ID.to_owned());
        ctx.resource_id = Some("x1y2z3".to_owned());
        ctx.resource_path = Some(TOKEN_PATH.to_owned());
        ctx.path = Some(TOKEN_PATH.to_owned());
        ctx.http_method = Method::POST;
        ctx.stage = Some(STAGE.to_owned());
        ctx.protocol = Some("HTTP/1.1".to_owned());
        ctx.domain_name = Some(HOST.to_owned());
        ctx.domain_prefix = HOST.split('.').next().map(str::to_owned);
        ctx.request_id = Some(self.request_id.unwrap_or_else(random_request_id));
        ctx.request_time_epoch = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        ctx.identity = identity;
        if let Some(caller) = &self.context {
            // API Gateway copies the authorizer's context next to these two.
            let mut fields: HashMap<String, Value> = caller.to_map();
            if let Some(keys) = &self.mac_keys {
                let api = ApiBinding { api_id: API_ID.to_owned(), stage: STAGE.to_owned() };
                for (k, v) in sign(caller, &api, keys, SystemTime::now(), CONTEXT_MAC_TTL) {
                    fields.insert(k.to_owned(), Value::String(v));
                }
            }
            fields.insert("principalId".to_owned(), Value::String(caller.caller_id.to_string()));
            fields.insert("integrationLatency".to_owned(), Value::from(12));
            ctx.authorizer.fields = fields;
        }

        let mut r = ApiGatewayProxyRequest::default();
        r.resource = Some(TOKEN_PATH.to_owned());
        r.path = Some(TOKEN_PATH.to_owned());
        r.http_method = Method::POST;
        r.multi_value_headers = headers.clone();
        r.headers = headers;
        r.body = Some(self.body);
        r.is_base64_encoded = false;
        r.request_context = ctx;
        r
    }

    /// [`ProxyRequestBuilder::build`] as the JSON a function binary reads from the Runtime API.
    pub fn to_json(self) -> Value {
        serde_json::to_value(self.build()).expect("a proxy event serialises")
    }
}

/// A request id shaped like API Gateway's (a UUID).
fn random_request_id() -> String {
    let n: u128 = rand::random();
    let h = format!("{n:032x}");
    format!("{}-{}-4{}-8{}-{}", &h[..8], &h[8..12], &h[13..16], &h[17..20], &h[20..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_broker_reads_back_the_caller_the_event_carries() {
        let r = proxy_request("order-processing", "grant_type=client_credentials");
        let ctx = CallerContext::from_map(&r.request_context.authorizer.fields).unwrap();
        assert_eq!(ctx.caller_id.to_string(), "order-processing");
        assert_eq!(ctx.auth_method, AuthMethod::Mtls);
        assert_eq!(ctx.credential_fingerprint, DEFAULT_FINGERPRINT);
        assert_eq!(ctx.policy_version, DEFAULT_POLICY_VERSION);
        assert_eq!(r.http_method, Method::POST);
        assert_eq!(r.path.as_deref(), Some(TOKEN_PATH));
        assert_eq!(r.headers["content-type"], FORM_CONTENT_TYPE);
        assert_eq!(r.multi_value_headers["content-type"], FORM_CONTENT_TYPE);
        assert_eq!(r.body.as_deref(), Some("grant_type=client_credentials"));
        let id = r.request_context.request_id.unwrap();
        assert_eq!((id.len(), id.matches('-').count()), (36, 4), "{id}");
    }

    #[test]
    fn variants() {
        let r = ProxyRequestBuilder::new("partner", "x=1")
            .auth_method(AuthMethod::Jwt)
            .credential_fingerprint("aaaa")
            .policy_version("v2")
            .header("Content-Type", "application/json")
            .request_id("req-1")
            .build();
        let ctx = CallerContext::from_map(&r.request_context.authorizer.fields).unwrap();
        assert_eq!(
            (ctx.auth_method, ctx.credential_fingerprint.as_str(), ctx.policy_version.as_str()),
            (AuthMethod::Jwt, "aaaa", "v2")
        );
        assert_eq!(r.headers.get_all("content-type").iter().count(), 1);
        assert_eq!(r.headers["content-type"], "application/json");
        assert_eq!(r.request_context.request_id.as_deref(), Some("req-1"));

        let none = ProxyRequestBuilder::new("partner", "x=1").without_authorizer().to_json();
        assert!(none["requestContext"].get("authorizer").is_none(), "{none}");
    }

    /// The JSON a function binary reads has the REST API's shape: the context flat in `requestContext.authorizer`.
    #[test]
    fn json_has_the_rest_api_shape() {
        let v = ProxyRequestBuilder::new("reporting", "grant_type=client_credentials").to_json();
        assert_eq!(v["httpMethod"], "POST");
        assert_eq!(v["requestContext"]["authorizer"]["callerId"], "reporting");
        assert_eq!(v["requestContext"]["authorizer"]["principalId"], "reporting");
        assert_eq!(v["requestContext"]["authorizer"]["authMethod"], "mtls");
        assert_eq!(v["multiValueHeaders"]["content-type"][0], FORM_CONTENT_TYPE);
        let back: ApiGatewayProxyRequest = serde_json::from_value(v).unwrap();
        assert!(CallerContext::from_map(&back.request_context.authorizer.fields).is_ok());
    }

    /// The default event's context verifies with the test key for its own API and stage; `unsigned` drops the MAC.
    #[test]
    fn the_context_carries_a_mac_for_the_events_api_and_stage() {
        use tb_shared::context::{verify, MacError, MAC_KEYS};
        let r = proxy_request("reporting", "");
        let fields = &r.request_context.authorizer.fields;
        let ctx = CallerContext::from_map(fields).unwrap();
        let keys = crate::fixtures::context_key_set();
        let api = ApiBinding {
            api_id: r.request_context.apiid.clone().unwrap(),
            stage: r.request_context.stage.clone().unwrap(),
        };
        assert_eq!(verify(fields, &ctx, &api, &keys, SystemTime::now()), Ok(()));
        let other = ApiBinding { stage: "other".into(), ..api.clone() };
        assert_eq!(verify(fields, &ctx, &other, &keys, SystemTime::now()), Err(MacError::Mismatch));
        let bare = ProxyRequestBuilder::new("reporting", "").unsigned().build();
        assert!(MAC_KEYS.iter().all(|k| !bare.request_context.authorizer.fields.contains_key(*k)));
        let mine = Arc::new(KeySet::single("mine", vec![9u8; 32]).unwrap());
        let r = ProxyRequestBuilder::new("reporting", "").signed_with(mine.clone()).build();
        let fields = &r.request_context.authorizer.fields;
        assert_eq!(verify(fields, &ctx, &api, &mine, SystemTime::now()), Ok(()));
        assert_eq!(verify(fields, &ctx, &api, &keys, SystemTime::now()), Err(MacError::UnknownKey));
    }

    #[test]
    fn lambda_event_carries_the_deadline() {
        let deadline = UNIX_EPOCH + std::time::Duration::from_millis(1_795_143_600_123);
        let e = lambda_event(proxy_request("reporting", ""), deadline);
        assert_eq!(e.context.deadline, 1_795_143_600_123);
    }
}
