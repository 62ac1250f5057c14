//! The call to Cognito's `/oauth2/token`: one pooled HTTPS client, timeouts inside the Lambda's deadline, one
//! jittered retry, a circuit breaker, Basic client authentication and a strict check of what comes back.
//!
//! The request carries exactly `grant_type=client_credentials` and the policy-approved `scope`: nothing the caller
//! sent is passed through. Nothing from Cognito's answer reaches the caller except a validated token; error bodies
//! are reduced to a fixed classification.

pub(crate) mod breaker;

use std::time::{Duration, Instant};

use base64::Engine as _;
use rand::Rng as _;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tb_shared::http::{read_capped, BodyError};
use tb_shared::ids::ScopeSet;

use crate::credentials::ClientCredentials;
use breaker::CircuitBreaker;

/// Largest token response read. A Cognito access token is 1–2 KiB; anything far larger is not a token response.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// Longest access token accepted (API Gateway and most clients choke long before this).
const MAX_ACCESS_TOKEN_BYTES: usize = 16 * 1024;
/// Time kept back from the Lambda deadline to build and return the answer after the last attempt gives up.
pub(crate) const DEADLINE_RESERVE: Duration = Duration::from_millis(250);
/// An attempt with less time than this is not started: it could not succeed and would only count against Cognito.
pub(crate) const MIN_ATTEMPT: Duration = Duration::from_millis(100);
/// Bounds of the random pause before the single retry, so many Lambdas failing together do not retry in lockstep.
const RETRY_JITTER_MS: (u64, u64) = (20, 120);

/// Timeouts and breaker settings, from the function's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamSettings {
    /// TCP + TLS connect timeout towards Cognito.
    pub connect_timeout: Duration,
    /// Upper bound for one attempt (connect + request + response), further cut to the Lambda's remaining time.
    pub attempt_timeout: Duration,
    /// Consecutive failed attempts that open the breaker.
    pub breaker_failure_threshold: u32,
    /// How long an open breaker fails fast before one probe is let through.
    pub breaker_open_for: Duration,
}

/// The Lambda's defaults (the configuration's, when no variable overrides them).
impl Default for UpstreamSettings {
    fn default() -> Self {
        UpstreamSettings {
            connect_timeout: Duration::from_millis(500),
            attempt_timeout: Duration::from_secs(3),
            breaker_failure_threshold: 5,
            breaker_open_for: Duration::from_secs(30),
        }
    }
}

/// A token Cognito issued and the broker checked.
pub struct IssuedToken {
    pub access_token: SecretString,
    pub expires_in: u64,
    /// What was granted: Cognito's `scope` if it sent one (already checked to be within the request), else the
    /// requested set (RFC 6749 §5.1: an omitted scope means "as requested").
    pub scope: ScopeSet,
}

impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedToken").field("expires_in", &self.expires_in).field("scope", &self.scope).finish()
    }
}

/// Why no token came back. Fixed strings only: Cognito's body is never kept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    /// Down, slow, throttling, out of time, or the breaker is open. `reason` is a metric-safe name.
    #[error("token endpoint unavailable: {reason}")]
    Unavailable { reason: &'static str, retry_after: Option<Duration> },
    /// Cognito refused our client credentials (`invalid_client`): the secret may have been rotated.
    #[error("token endpoint refused the client credentials")]
    InvalidClient,
    /// Any answer we cannot use: another OAuth error, a malformed body, scopes beyond the request.
    #[error("token endpoint answer rejected: {0}")]
    BadResponse(&'static str),
}

/// The pooled client plus breaker. Built once at cold start and shared by every invocation, so TLS sessions and
/// connections to Cognito are reused while the Lambda stays warm.
#[derive(Debug)]
pub struct Upstream {
    http: reqwest::Client,
    settings: UpstreamSettings,
    breaker: CircuitBreaker,
}

/// One attempt's classified outcome.
enum Attempt {
    Done(Result<IssuedToken, UpstreamError>),
    Retryable(&'static str),
}

impl Upstream {
    /// Builds the client: rustls, no redirects (a token endpoint that redirects is misconfigured, and following one
    /// would resend the Basic credentials elsewhere), no proxy from the environment.
    pub fn new(settings: UpstreamSettings) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.attempt_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .pool_idle_timeout(Duration::from_secs(50))
            .user_agent(concat!("token-broker/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let breaker = CircuitBreaker::new(settings.breaker_failure_threshold, settings.breaker_open_for);
        Ok(Upstream { http, settings, breaker })
    }

    /// Whether the breaker currently fails requests fast.
    pub fn breaker_open(&self) -> bool {
        self.breaker.is_open(Instant::now())
    }

    /// Asks for a client-credentials token with exactly `scopes`, giving up by `deadline` (the Lambda's, when known).
    /// At most two attempts, the second only after a timeout, 5xx or throttle and only if time remains.
    pub async fn request_token(
        &self,
        creds: &ClientCredentials,
        scopes: &ScopeSet,
        deadline: Option<Instant>,
    ) -> Result<IssuedToken, UpstreamError> {
        let mut last_reason = "upstream_unavailable";
        for attempt in 0..2 {
            if attempt == 1 {
                let jitter = rand::rng().random_range(RETRY_JITTER_MS.0..=RETRY_JITTER_MS.1);
                let pause = Duration::from_millis(jitter);
                if self.time_for_attempt(deadline, pause).is_none() {
                    break;
                }
                tokio::time::sleep(pause).await;
            }
            let Some(timeout) = self.time_for_attempt(deadline, Duration::ZERO) else {
                last_reason = "upstream_no_time_left";
                break;
            };
            let permit = match self.breaker.try_acquire(Instant::now()) {
                Ok(p) => p,
                Err(retry_after) => {
                    return Err(UpstreamError::Unavailable {
                        reason: breaker::OPEN_REASON,
                        retry_after: Some(retry_after),
                    })
                }
            };
            match self.attempt(creds, scopes, timeout).await {
                Attempt::Done(result) => {
                    permit.success();
                    return result;
                }
                Attempt::Retryable(reason) => {
                    permit.failure();
                    last_reason = reason;
                }
            }
        }
        Err(UpstreamError::Unavailable { reason: last_reason, retry_after: None })
    }

    /// The timeout for an attempt starting after `pause`, or `None` when too little time would remain.
    fn time_for_attempt(&self, deadline: Option<Instant>, pause: Duration) -> Option<Duration> {
        let budget = match deadline {
            None => self.settings.attempt_timeout,
            Some(d) => d
                .checked_duration_since(Instant::now() + pause)?
                .checked_sub(DEADLINE_RESERVE)?
                .min(self.settings.attempt_timeout),
        };
        (budget >= MIN_ATTEMPT).then_some(budget)
    }

    async fn attempt(&self, creds: &ClientCredentials, scopes: &ScopeSet, timeout: Duration) -> Attempt {
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("scope", &scopes.to_param())
            .finish();
        let mut auth = match http::HeaderValue::from_str(&basic_authorization(creds)) {
            Ok(v) => v,
            // Only possible with a control character in the credentials: an operator error, not an outage.
            Err(_) => return Attempt::Done(Err(UpstreamError::BadResponse("credentials not usable in a header"))),
        };
        auth.set_sensitive(true);
        let sent = self
            .http
            .post(creds.token_url.clone())
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
}

/// RFC 6749 §2.3.1: the client id and secret are form-urlencoded before they are joined and base64-encoded.
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
    if !b.token_type.as_deref().is_some_and(|t| t.eq_ignore_ascii_case("bearer")) {
        return Err(UpstreamError::BadResponse("token_type is not Bearer"));
    }
    let expires_in = b
        .expires_in
        .as_ref()
        .and_then(serde_json::Value::as_u64)
        .filter(|&n| n > 0)
        .ok_or(UpstreamError::BadResponse("expires_in is not a positive integer"))?;
    let access_token = b
        .access_token
        .filter(|t| !t.is_empty() && t.len() <= MAX_ACCESS_TOKEN_BYTES)
        .ok_or(UpstreamError::BadResponse("access_token missing, empty or too long"))?;
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
    Ok(IssuedToken { access_token: SecretString::from(access_token), expires_in, scope })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scopes(s: &str) -> ScopeSet {
        ScopeSet::parse_param(s).unwrap()
    }

    #[test]
    fn basic_auth_form_encodes_before_base64() {
        let creds = ClientCredentials {
            client_id: "id:1".into(),
            client_secret: SecretString::from("s e+c%ret"),
            token_url: "https://example.invalid/oauth2/token".parse().unwrap(),
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
