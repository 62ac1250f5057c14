//! The hosted OAuth 2.0 endpoint, `/oauth2/token` of the user pool's domain: one form POST with Basic client
//! authentication, `grant_type=client_credentials`, the approved `scope`, and the signed caller claims as
//! `aws_client_metadata` (a URL-encoded JSON object, which Cognito hands to the pre-token-generation trigger).

use std::time::Duration;

use base64::Engine as _;
use secrecy::ExposeSecret;
use serde::Deserialize;
use tb_shared::http::{read_capped, BodyError};
use tb_shared::ids::ScopeSet;

use super::{checked_token, Attempt, ClientMetadata, IssuedToken, UpstreamError, MAX_RESPONSE_BYTES};
use crate::credentials::ClientCredentials;

/// One attempt against `token_url`, within `timeout`.
pub(super) async fn attempt(
    http: &reqwest::Client,
    token_url: &url::Url,
    creds: &ClientCredentials,
    scopes: &ScopeSet,
    metadata: &ClientMetadata,
    timeout: Duration,
) -> Attempt {
    // Built in a block: the serializer is not `Send`, and the request future must be.
    let body = {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "client_credentials").append_pair("scope", &scopes.to_param());
        if !metadata.is_empty() {
            // A map of strings always serialises.
            let json = serde_json::to_string(metadata).unwrap_or_default();
            form.append_pair("aws_client_metadata", &json);
        }
        form.finish()
    };
    let mut auth = match http::HeaderValue::from_str(&basic_authorization(creds)) {
        Ok(v) => v,
        // Only possible with a control character in the credentials: an operator error, not an outage.
        Err(_) => return Attempt::Done(Err(UpstreamError::BadResponse("credentials not usable in a header"))),
    };
    auth.set_sensitive(true);
    let sent = http
        .post(token_url.clone())
        .timeout(timeout)
        .header(http::header::AUTHORIZATION, auth)
        .header(http::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(http::header::ACCEPT, "application/json")
        .body(body)
        .send()
        .await;
    let mut resp = match sent {
        Ok(r) => r,
        Err(e) if e.is_timeout() => return Attempt::Retryable("upstream_timeout"),
        Err(_) => return Attempt::Retryable("upstream_connect_failed"),
    };
    let status = resp.status();
    let body = match read_capped(&mut resp, MAX_RESPONSE_BYTES).await {
        Ok(b) => b,
        Err(BodyError::Timeout) => return Attempt::Retryable("upstream_timeout"),
        Err(BodyError::Io) => return Attempt::Retryable("upstream_connect_failed"),
        Err(BodyError::TooLarge) => return Attempt::Done(Err(UpstreamError::BadResponse("response too large"))),
    };
    if status.is_server_error() {
        return Attempt::Retryable("upstream_5xx");
    }
    if status == reqwest::StatusCode::TOO_MANY_REQUESTS || is_cognito_throttle(&body) {
        return Attempt::Retryable("upstream_throttled");
    }
    if !status.is_success() {
        return Attempt::Done(Err(classify_error(status, &body)));
    }
    Attempt::Done(validate_success(&body, scopes))
}

/// The only place the secret is exposed.
fn basic_authorization(creds: &ClientCredentials) -> String {
    let id: String = form_urlencoded::byte_serialize(creds.client_id.as_bytes()).collect();
    let secret: String = form_urlencoded::byte_serialize(creds.client_secret.expose_secret().as_bytes()).collect();
    let joined = format!("{id}:{secret}");
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(joined))
}

#[derive(Deserialize)]
struct ErrorBody {
    error: Option<String>,
    #[serde(rename = "__type")]
    aws_type: Option<String>,
}

/// Cognito's API answers throttling with HTTP 400 and `{"__type":"TooManyRequestsException"}` rather than 429; that
/// is Cognito being busy (the account-wide 150 rps), not a refusal of our request, so it is retried like a 429.
fn is_cognito_throttle(body: &[u8]) -> bool {
    serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .and_then(|b| b.aws_type)
        .is_some_and(|t| t.ends_with("TooManyRequestsException") || t.ends_with("LimitExceededException"))
}

/// A 4xx from Cognito. `invalid_client` (or a bare 401) means our credentials were refused; anything else means the
/// broker's configuration and Cognito's disagree (e.g. a scope no longer on the app client): not the caller's fault.
fn classify_error(status: reqwest::StatusCode, body: &[u8]) -> UpstreamError {
    let code = serde_json::from_slice::<ErrorBody>(body).ok().and_then(|b| b.error);
    match code.as_deref() {
        Some("invalid_client") => UpstreamError::InvalidClient,
        None if status == reqwest::StatusCode::UNAUTHORIZED => UpstreamError::InvalidClient,
        Some("invalid_scope") => UpstreamError::BadResponse("upstream refused the approved scopes"),
        Some("unauthorized_client") => UpstreamError::BadResponse("app client may not use client_credentials"),
        _ => UpstreamError::BadResponse("upstream error answer"),
    }
}

#[derive(Deserialize)]
struct SuccessBody {
    access_token: Option<String>,
    token_type: Option<String>,
    expires_in: Option<serde_json::Value>,
    scope: Option<String>,
}

/// Checks a 200 answer: Bearer token type, a positive integer `expires_in`, a non-empty token of sane length, and
/// a granted scope within the request.
fn validate_success(body: &[u8], requested: &ScopeSet) -> Result<IssuedToken, UpstreamError> {
    let b: SuccessBody =
        serde_json::from_slice(body).map_err(|_| UpstreamError::BadResponse("response is not a token response"))?;
    let expires_in = b.expires_in.as_ref().and_then(serde_json::Value::as_u64);
    let (access_token, expires_in) = checked_token(b.token_type.as_deref(), expires_in, b.access_token)?;
    let scope = match b.scope.as_deref() {
        None => requested.clone(),
        Some(s) => {
            let granted = ScopeSet::parse_param(s).map_err(|_| UpstreamError::BadResponse("scope is malformed"))?;
            if !granted.is_subset(requested) {
                return Err(UpstreamError::BadResponse("scope exceeds the request"));
            }
            granted
        }
    };
    Ok(IssuedToken { access_token, expires_in, scope })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::UpstreamEndpoint;
    use secrecy::SecretString;

    fn scopes(s: &str) -> ScopeSet {
        ScopeSet::parse_param(s).unwrap()
    }

    #[test]
    fn basic_auth_form_encodes_before_base64() {
        let creds = ClientCredentials {
            client_id: "id:1".into(),
            client_secret: SecretString::from("s e+c%ret"),
            upstream: UpstreamEndpoint::TokenEndpoint("https://example.invalid/oauth2/token".parse().unwrap()),
        };
        let h = basic_authorization(&creds);
        let decoded = base64::engine::general_purpose::STANDARD.decode(h.strip_prefix("Basic ").unwrap()).unwrap();
        assert_eq!(String::from_utf8(decoded).unwrap(), "id%3A1:s+e%2Bc%25ret");
    }

    #[test]
    fn success_checks() {
        let req = scopes("a/read a/write");
        let ok = br#"{"access_token":"t","token_type":"bearer","expires_in":3600,"scope":"a/read"}"#;
        let t = validate_success(ok, &req).unwrap();
        assert_eq!((t.expires_in, t.scope.to_param()), (3600, "a/read".to_owned()));
        let no_scope = br#"{"access_token":"t","token_type":"Bearer","expires_in":5}"#;
        assert_eq!(validate_success(no_scope, &req).unwrap().scope, req);
        for bad in [
            &br#"{"access_token":"t","token_type":"mac","expires_in":3600}"#[..],
            br#"{"access_token":"t","token_type":"Bearer","expires_in":0}"#,
            br#"{"access_token":"t","token_type":"Bearer","expires_in":"3600"}"#,
            br#"{"access_token":"t","token_type":"Bearer","expires_in":1.5}"#,
            br#"{"access_token":"t","token_type":"Bearer","expires_in":-1}"#,
            br#"{"access_token":"","token_type":"Bearer","expires_in":3600}"#,
            br#"{"token_type":"Bearer","expires_in":3600}"#,
            br#"{"access_token":"t","token_type":"Bearer","expires_in":3600,"scope":"a/admin"}"#,
            br#"{"access_token":"t","token_type":"Bearer","expires_in":3600,"scope":"a/read  a/write"}"#,
            b"not json",
        ] {
            assert!(validate_success(bad, &req).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn error_classification() {
        use reqwest::StatusCode as S;
        assert_eq!(classify_error(S::BAD_REQUEST, br#"{"error":"invalid_client"}"#), UpstreamError::InvalidClient);
        assert_eq!(classify_error(S::UNAUTHORIZED, b""), UpstreamError::InvalidClient);
        assert!(matches!(
            classify_error(S::BAD_REQUEST, br#"{"error":"invalid_scope"}"#),
            UpstreamError::BadResponse(_)
        ));
        assert!(matches!(classify_error(S::FORBIDDEN, b"<html>"), UpstreamError::BadResponse(_)));
        assert!(is_cognito_throttle(br#"{"__type":"TooManyRequestsException","message":"Rate exceeded"}"#));
        assert!(!is_cognito_throttle(br#"{"error":"invalid_client"}"#));
    }
}
