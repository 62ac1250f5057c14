//! A sample resource server: what a service behind the tokens does with them. `GET /customers`
//! needs `customer-api/read`, `DELETE /customers/{id}` needs `customer-api/admin`; tokens are checked against the
//! token issuer's JWKS, fetched over HTTP like a real resource server would (and re-fetched once when a token names
//! an unknown key). Answers follow RFC 6750: 401 `invalid_token` without a valid token, 403 `insufficient_scope`.
//!
//! It listens twice ([`serve`]): on plain TLS, and on TLS that asks for a client certificate of the local stack's CA
//! without requiring one. After the token's own checks, [`tb_resource::check_certificate_binding`] compares a bound
//! token's `cnf.x5t#S256` with the certificate of the request's connection (RFC 8705 §3): a bound token is served
//! only on the mTLS listener and only to a client that presented its certificate; anything else is a 401
//! `invalid_token` with the reason in `error_description`. A token without `cnf` is served on both listeners, as
//! before. This is the check `docs/resource-servers.md` asks of every resource server.

use std::net::SocketAddr;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use http::{Method, Response, StatusCode};
use http_body_util::Full;
use serde_json::{Map, Value};
use tb_devkit::cognito::{verify_access_token_with_jwks, JwkSet, VerifyError};
use tokio::sync::RwLock;
use tokio::task::JoinHandle;

use super::gateway::Domain;
use super::listener;

/// The sample resource server's state.
pub struct ResourceServer {
    jwks_url: String,
    issuer: String,
    http: reqwest::Client,
    jwks: RwLock<Option<JwkSet>>,
}

impl std::fmt::Debug for ResourceServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResourceServer").field("jwks_url", &self.jwks_url).finish()
    }
}

fn json(status: StatusCode, body: String, extra: Option<(&str, String)>) -> Response<Full<Bytes>> {
    let mut b = Response::builder().status(status).header("content-type", "application/json");
    if let Some((k, v)) = extra {
        b = b.header(k, v);
    }
    b.body(Full::new(Bytes::from(body))).unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

impl ResourceServer {
    /// A server trusting tokens of `issuer` signed by keys at `jwks_url`.
    pub fn new(jwks_url: String, issuer: String) -> Self {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(2))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        ResourceServer { jwks_url, issuer, http, jwks: RwLock::new(None) }
    }

    async fn fetch_jwks(&self) -> Option<JwkSet> {
        let resp = self.http.get(&self.jwks_url).send().await.ok()?;
        let set: JwkSet = resp.json().await.ok()?;
        *self.jwks.write().await = Some(set.clone());
        Some(set)
    }

    /// The token's scopes and its whole claims set, once it verified.
    async fn verify(&self, token: &str) -> Result<(Vec<String>, Map<String, Value>), VerifyError> {
        let cached = self.jwks.read().await.clone();
        let set = match cached {
            Some(s) => s,
            None => self.fetch_jwks().await.ok_or(VerifyError::UnknownKey)?,
        };
        let claims = match verify_access_token_with_jwks(&set, &self.issuer, token) {
            Err(VerifyError::UnknownKey) => {
                let fresh = self.fetch_jwks().await.ok_or(VerifyError::UnknownKey)?;
                verify_access_token_with_jwks(&fresh, &self.issuer, token)?
            }
            other => other?,
        };
        let all = verified_claims(token).ok_or(VerifyError::Malformed)?;
        Ok((claims.scopes().into_iter().map(str::to_owned).collect(), all))
    }

    /// A request handler for [`listener::serve`], handing the connection's client certificate on.
    pub fn handler(self: &Arc<Self>) -> listener::Handler {
        let rs = self.clone();
        Arc::new(move |req, conn| {
            let rs = rs.clone();
            Box::pin(async move { rs.handle(req, conn.client_cert.as_deref().map(Vec::as_slice)).await })
        })
    }

    /// Handles one request; `client_cert` is the leaf certificate (DER) the TLS handshake verified on the request's
    /// connection, `None` on the plain listener or when the client sent none.
    pub async fn handle(
        self: Arc<Self>,
        req: http::Request<Bytes>,
        client_cert: Option<&[u8]>,
    ) -> Response<Full<Bytes>> {
        let path = req.uri().path().to_owned();
        let needed = match (req.method(), path.as_str()) {
            (&Method::GET, "/customers") => "customer-api/read",
            (&Method::DELETE, p)
                if p.strip_prefix("/customers/").is_some_and(|id| !id.is_empty() && !id.contains('/')) =>
            {
                "customer-api/admin"
            }
            _ => return json(StatusCode::NOT_FOUND, r#"{"error":"not_found"}"#.into(), None),
        };
        let token = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim);
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return json(
                StatusCode::UNAUTHORIZED,
                r#"{"error":"invalid_token","error_description":"a bearer token is required"}"#.into(),
                Some(("www-authenticate", "Bearer realm=\"customer-api\"".into())),
            );
        };
        let (scopes, claims) = match self.verify(token).await {
            Ok(s) => s,
            Err(e) => {
                return json(
                    StatusCode::UNAUTHORIZED,
                    serde_json::json!({"error": "invalid_token", "error_description": e.to_string()}).to_string(),
                    Some(("www-authenticate", "Bearer realm=\"customer-api\", error=\"invalid_token\"".into())),
                )
            }
        };
        // A token that is not usable on this connection is invalid here, whatever its scopes (RFC 8705 §3).
        if let Err(e) = tb_resource::check_certificate_binding(&claims, client_cert) {
            return json(
                StatusCode::UNAUTHORIZED,
                serde_json::json!({"error": tb_resource::ERROR_CODE, "error_description": e.error_description()})
                    .to_string(),
                Some((
                    "www-authenticate",
                    format!(
                        "Bearer realm=\"customer-api\", error=\"{}\", error_description=\"{}\"",
                        tb_resource::ERROR_CODE,
                        e.error_description()
                    ),
                )),
            );
        }
        if !scopes.iter().any(|s| s == needed) {
            return json(
                StatusCode::FORBIDDEN,
                serde_json::json!({"error": "insufficient_scope", "error_description": format!("requires {needed}")})
                    .to_string(),
                Some((
                    "www-authenticate",
                    format!("Bearer realm=\"customer-api\", error=\"insufficient_scope\", scope=\"{needed}\""),
                )),
            );
        }
        if req.method() == Method::DELETE {
            return json(
                StatusCode::OK,
                serde_json::json!({"deleted": &path["/customers/".len()..]}).to_string(),
                None,
            );
        }
        json(StatusCode::OK, r#"[{"id":"123","name":"Ada Lovelace"},{"id":"456","name":"Grace Hopper"}]"#.into(), None)
    }
}

/// The claims set of a token whose signature and claims [`verify_access_token_with_jwks`] already checked: the payload
/// segment as a JSON object, with every claim (`cnf` and the caller claims included) that the typed claims leave out.
fn verified_claims(token: &str) -> Option<Map<String, Value>> {
    let payload = token.split('.').nth(1)?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
}

/// The resource server's running listeners.
#[derive(Debug)]
pub struct ResourceListeners {
    /// The plain TLS listener (no client certificate asked for).
    pub plain_addr: SocketAddr,
    /// The mutual-TLS listener (client certificate asked for, optional; see
    /// [`listener::optional_client_cert_config`]).
    pub mtls_addr: SocketAddr,
    /// Both accept loops; aborting them stops the listeners.
    pub tasks: Vec<JoinHandle<()>>,
}

/// Serves `rs` on `plain` (address and a TLS config without client authentication) and on `mtls` (address and a
/// config from [`listener::optional_client_cert_config`]).
pub async fn serve(
    rs: Arc<ResourceServer>,
    plain: (SocketAddr, Arc<rustls::ServerConfig>),
    mtls: (SocketAddr, Arc<rustls::ServerConfig>),
) -> std::io::Result<ResourceListeners> {
    let (plain_addr, plain_task) = listener::serve(plain.0, plain.1, Domain::Partner, rs.handler()).await?;
    match listener::serve(mtls.0, mtls.1, Domain::Mtls, rs.handler()).await {
        Ok((mtls_addr, mtls_task)) => {
            Ok(ResourceListeners { plain_addr, mtls_addr, tasks: vec![plain_task, mtls_task] })
        }
        Err(e) => {
            plain_task.abort();
            Err(e)
        }
    }
}
