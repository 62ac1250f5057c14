//! HTTP side of the stand-in: routes, the token handler, the JWKS and the optional `/_devkit/` admin routes.
//! NOT FOR PRODUCTION.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use super::auth::{parse_basic, parse_form, parse_scope};
use super::faults::{Injected, ThrottleStyle};
use super::issue::{self, EntryPoint, IssueError};
use super::keys::random_uuid;
use super::{lock, random_secret, ClientFlow, Shared};

/// The largest body read from a token request; Cognito's requests are a few hundred bytes.
const MAX_BODY: usize = 16 * 1024;

/// How long a TLS handshake may take before the connection is dropped, so a silent client cannot hold a slot.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) fn router(shared: Arc<Shared>, issuer_path: &str, admin_routes: bool) -> Router {
    let mut app = Router::new()
        .route("/", post(super::api::dispatch))
        .route("/oauth2/token", post(token))
        .route("/.well-known/jwks.json", get(jwks))
        .route("/.well-known/openid-configuration", get(openid_configuration));
    if !issuer_path.is_empty() {
        app = app
            .route(&format!("/{issuer_path}/.well-known/jwks.json"), get(jwks))
            .route(&format!("/{issuer_path}/.well-known/openid-configuration"), get(openid_configuration));
    }
    if admin_routes {
        app = app
            .route("/_devkit/stats", get(admin_stats))
            .route("/_devkit/faults", post(admin_faults))
            .route("/_devkit/clients/{client_id}/rotate-secret", post(admin_rotate));
    }
    app.layer(axum::extract::DefaultBodyLimit::max(MAX_BODY)).with_state(shared)
}

/// The OAuth error codes the stand-in answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OAuthError {
    InvalidRequest,
    InvalidClient,
    UnauthorizedClient,
    UnsupportedGrantType,
    InvalidScope,
}

impl OAuthError {
    fn code(self) -> &'static str {
        match self {
            OAuthError::InvalidRequest => "invalid_request",
            OAuthError::InvalidClient => "invalid_client",
            OAuthError::UnauthorizedClient => "unauthorized_client",
            OAuthError::UnsupportedGrantType => "unsupported_grant_type",
            OAuthError::InvalidScope => "invalid_scope",
        }
    }
}

/// Headers every token-endpoint answer carries, as Cognito's do: JSON, never cached, a request id.
fn token_headers() -> [(header::HeaderName, HeaderValue); 4] {
    let request_id = HeaderValue::from_str(&random_uuid()).unwrap_or(HeaderValue::from_static("unknown"));
    [
        (header::CONTENT_TYPE, HeaderValue::from_static("application/json;charset=UTF-8")),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache, no-store, max-age=0, must-revalidate")),
        (header::PRAGMA, HeaderValue::from_static("no-cache")),
        (header::HeaderName::from_static("x-amz-cognito-request-id"), request_id),
    ]
}

fn json_answer(status: StatusCode, body: serde_json::Value) -> Response {
    (status, token_headers(), body.to_string()).into_response()
}

fn oauth_error(shared: &Shared, err: OAuthError, client_id: Option<&str>) -> Response {
    tracing::debug!(
        client_id = client_id.unwrap_or("-"),
        error = err.code(),
        "cognito stand-in rejected token request"
    );
    let status = if err == OAuthError::InvalidClient { shared.invalid_client_status } else { StatusCode::BAD_REQUEST };
    json_answer(status, json!({ "error": err.code() }))
}

fn injected_answer(injected: Injected) -> Response {
    match injected {
        Injected::ServerError(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            json_answer(status, json!({ "error": "server_error" }))
        }
        Injected::Throttled(style) => {
            let body = json!({ "__type": "TooManyRequestsException", "message": "Rate exceeded" });
            match style {
                ThrottleStyle::CognitoBadRequest => json_answer(StatusCode::BAD_REQUEST, body),
                ThrottleStyle::TooManyRequests => {
                    let mut resp = json_answer(StatusCode::TOO_MANY_REQUESTS, body);
                    resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                    resp
                }
            }
        }
    }
}

/// Whether the request's media type is `application/x-www-form-urlencoded` (parameters such as charset allowed).
fn is_form(headers: &HeaderMap) -> bool {
    let Some(ct) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let media = ct.split(';').next().unwrap_or("").trim();
    media.eq_ignore_ascii_case("application/x-www-form-urlencoded")
}

/// Best-effort client id for the per-client counter, read before any validation so even rejected and
/// fault-answered requests are attributed.
fn count_request(shared: &Shared, headers: &HeaderMap, body: &[u8]) {
    let from_basic = headers.get(header::AUTHORIZATION).and_then(|v| parse_basic(v.as_bytes())).map(|c| c.client_id);
    let named = from_basic
        .or_else(|| form_urlencoded::parse(body).find(|(k, _)| k == "client_id").map(|(_, v)| v.into_owned()));
    issue::count_token_request(shared, named);
}

async fn token(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    count_request(&shared, &headers, &body);

    let (delay, injected) = shared.faults.take();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if let Some(injected) = injected {
        tracing::debug!(?injected, "cognito stand-in answered with an injected fault");
        return injected_answer(injected);
    }

    if !is_form(&headers) {
        tracing::debug!("cognito stand-in rejected a token request without a form content type");
        return json_answer(StatusCode::METHOD_NOT_ALLOWED, json!({ "error": "invalid_request" }));
    }
    let Ok(form) = parse_form(&body) else {
        return oauth_error(&shared, OAuthError::InvalidRequest, None);
    };
    let grant_type = match form.grant_type.as_deref() {
        None | Some("") => return oauth_error(&shared, OAuthError::InvalidRequest, None),
        Some(g @ ("client_credentials" | "authorization_code" | "refresh_token")) => g,
        Some(_) => return oauth_error(&shared, OAuthError::UnsupportedGrantType, None),
    };

    // Client authentication: Basic, or client_id + client_secret in the body, never both (RFC 6749 §2.3).
    let mut auth_headers = headers.get_all(header::AUTHORIZATION).iter();
    let auth_header = auth_headers.next();
    if auth_headers.next().is_some() {
        return oauth_error(&shared, OAuthError::InvalidRequest, None);
    }
    let (client_id, secret) = match auth_header {
        Some(value) => {
            let Some(basic) = parse_basic(value.as_bytes()) else {
                return oauth_error(&shared, OAuthError::InvalidClient, None);
            };
            if form.client_secret.is_some() {
                return oauth_error(&shared, OAuthError::InvalidRequest, Some(&basic.client_id));
            }
            if form.client_id.as_deref().is_some_and(|id| id != basic.client_id) {
                return oauth_error(&shared, OAuthError::InvalidClient, Some(&basic.client_id));
            }
            (basic.client_id, basic.client_secret)
        }
        None => match (form.client_id.clone(), form.client_secret.clone()) {
            (Some(id), Some(secret)) if !id.is_empty() => (id, secret),
            (id, _) => return oauth_error(&shared, OAuthError::InvalidClient, id.as_deref()),
        },
    };

    let Ok(client) = issue::authenticate(&shared, &client_id, &secret) else {
        return oauth_error(&shared, OAuthError::InvalidClient, Some(&client_id));
    };
    let oauth_allowed = client.flow == ClientFlow::ClientCredentials && client.client_credentials_enabled;
    if grant_type != "client_credentials" || !oauth_allowed {
        return oauth_error(&shared, OAuthError::UnauthorizedClient, Some(&client_id));
    }

    let requested = match form.scope.as_deref().map(parse_scope) {
        None => Vec::new(),
        Some(Some(scopes)) => scopes,
        Some(None) => return oauth_error(&shared, OAuthError::InvalidScope, Some(&client_id)),
    };
    let Ok(scopes) = issue::grant_scopes(requested, client.allowed_scopes) else {
        return oauth_error(&shared, OAuthError::InvalidScope, Some(&client_id));
    };

    let grant = issue::Grant {
        entry: EntryPoint::TokenEndpoint,
        client_id: &client_id,
        scopes,
        validity: client.validity,
        metadata: form.client_metadata.as_ref(),
    };
    match issue::issue(&shared, grant) {
        Ok(issued) => json_answer(
            StatusCode::OK,
            json!({ "access_token": issued.access_token, "expires_in": issued.expires_in, "token_type": "Bearer" }),
        ),
        Err(IssueError::Signing) => json_answer(StatusCode::INTERNAL_SERVER_ERROR, json!({ "error": "server_error" })),
        Err(e) => {
            let description = e.trigger_message().unwrap_or_default();
            json_answer(
                StatusCode::BAD_REQUEST,
                json!({ "error": "invalid_request", "error_description": description }),
            )
        }
    }
}

async fn jwks(State(shared): State<Arc<Shared>>) -> Response {
    let set = tb_shared::sync::read(&shared.keys).jwks();
    Json(set).into_response()
}

/// A subset of Cognito's discovery document: enough for a resource server or client library to find the JWKS and
/// the token endpoint.
async fn openid_configuration(State(shared): State<Arc<Shared>>) -> Response {
    Json(json!({
        "issuer": shared.issuer,
        "jwks_uri": format!("{}/.well-known/jwks.json", shared.issuer),
        "token_endpoint": format!("{}/oauth2/token", shared.base_url),
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }))
    .into_response()
}

async fn admin_stats(State(shared): State<Arc<Shared>>) -> Response {
    let per_client: HashMap<String, u64> = lock(&shared.counters.per_client).clone();
    Json(json!({
        "token_requests": shared.counters.token_requests.load(Ordering::SeqCst),
        "tokens_issued": shared.counters.tokens_issued.load(Ordering::SeqCst),
        "per_client": per_client,
        "delay_ms": u64::try_from(shared.faults.delay().as_millis()).unwrap_or(u64::MAX),
    }))
    .into_response()
}

/// Body of `POST /_devkit/faults`; every member optional, applied in the order listed.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultRequest {
    #[serde(default)]
    clear: bool,
    delay_ms: Option<u64>,
    fail_next: Option<CountedStatus>,
    fail_all: Option<u16>,
    throttle_next: Option<CountedThrottle>,
    throttle_all: Option<ThrottleStyle>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CountedStatus {
    count: u64,
    status: u16,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CountedThrottle {
    count: u64,
    style: ThrottleStyle,
}

async fn admin_faults(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let Ok(req) = serde_json::from_slice::<FaultRequest>(&body) else {
        return (StatusCode::BAD_REQUEST, Json(json!({ "error": "invalid fault request" }))).into_response();
    };
    let is_5xx = |s: u16| (500..=599).contains(&s);
    if req.fail_next.as_ref().is_some_and(|f| !is_5xx(f.status)) || req.fail_all.is_some_and(|s| !is_5xx(s)) {
        return (StatusCode::BAD_REQUEST, Json(json!({ "error": "status must be 5xx" }))).into_response();
    }
    let f = &shared.faults;
    if req.clear {
        f.clear();
    }
    if let Some(ms) = req.delay_ms {
        f.set_delay(Duration::from_millis(ms));
    }
    if let Some(c) = req.fail_next {
        f.fail_next(c.count, c.status);
    }
    if let Some(s) = req.fail_all {
        f.fail_all(s);
    }
    if let Some(t) = req.throttle_next {
        f.throttle_next(t.count, t.style);
    }
    if let Some(style) = req.throttle_all {
        f.throttle_all(style);
    }
    StatusCode::NO_CONTENT.into_response()
}

/// Rotates a client's secret and returns the new one: a development convenience for the local stack, which must
/// put the new value into its embedded secret store.
async fn admin_rotate(State(shared): State<Arc<Shared>>, Path(client_id): Path<String>) -> Response {
    let secret = random_secret();
    let found = match lock(&shared.clients).get_mut(&client_id) {
        Some(entry) => {
            entry.secrets.replace_all(&secret);
            true
        }
        None => false,
    };
    if !found {
        return (StatusCode::NOT_FOUND, Json(json!({ "error": "unknown client" }))).into_response();
    }
    tracing::info!(client_id = %client_id, "cognito stand-in rotated a client secret");
    let mut resp = Json(json!({ "client_id": client_id, "client_secret": secret })).into_response();
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// A listener that hands axum TLS streams. Handshakes run in their own tasks so one slow or silent client cannot
/// stall accepting others; failed handshakes are dropped.
pub(super) struct TlsListener {
    rx: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    pub(super) fn new(listener: TcpListener, config: Arc<rustls::ServerConfig>) -> Self {
        let local = listener.local_addr().unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
        let acceptor = TlsAcceptor::from(config);
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = tx.closed() => break,
                    accepted = listener.accept() => accepted,
                };
                let (tcp, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        tracing::debug!(error = %e, "cognito stand-in accept failed");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(error = %e, "cognito stand-in TLS handshake failed"),
                        Err(_) => tracing::debug!("cognito stand-in TLS handshake timed out"),
                    }
                });
            }
        });
        Self { rx, local }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(pair) => pair,
            // The accept task only ends when this listener is dropped, so this never resolves in practice.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
