//! A sample resource server: what a service behind the tokens does with them. `GET /customers`
//! needs `customer-api/read`, `DELETE /customers/{id}` needs `customer-api/admin`; tokens are checked against the
//! token issuer's JWKS, fetched over HTTP like a real resource server would (and re-fetched once when a token names
//! an unknown key). Answers follow RFC 6750: 401 `invalid_token` without a valid token, 403 `insufficient_scope`.

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Response, StatusCode};
use http_body_util::Full;
use tb_devkit::cognito::{verify_access_token_with_jwks, JwkSet, VerifyError};
use tokio::sync::RwLock;

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

    async fn verify(&self, token: &str) -> Result<Vec<String>, VerifyError> {
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
        Ok(claims.scopes().into_iter().map(str::to_owned).collect())
    }

    /// Handles one request.
    pub async fn handle(self: Arc<Self>, req: http::Request<Bytes>) -> Response<Full<Bytes>> {
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
        let scopes = match self.verify(token).await {
            Ok(s) => s,
            Err(e) => {
                return json(
                    StatusCode::UNAUTHORIZED,
                    serde_json::json!({"error": "invalid_token", "error_description": e.to_string()}).to_string(),
                    Some(("www-authenticate", "Bearer realm=\"customer-api\", error=\"invalid_token\"".into())),
                )
            }
        };
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
