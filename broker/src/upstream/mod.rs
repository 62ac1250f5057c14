//! Getting a token from Cognito: one pooled client per upstream mode, timeouts inside the Lambda's deadline, one
//! jittered retry, a circuit breaker shared by both modes, and a strict check of what comes back.
//!
//! Two modes, chosen per app client in its credentials ([`crate::credentials::UpstreamEndpoint`]):
//! [`token_endpoint`] (the hosted `/oauth2/token`) and [`client_token`] (the `GetClientToken` API). Both send
//! exactly the policy-approved scopes and the signed caller claims as client metadata: nothing the caller sent is
//! passed through. Nothing from Cognito's answer reaches the caller except a validated token; error bodies are
//! reduced to a fixed classification, the same for both modes.

pub(crate) mod breaker;
mod client_token;
mod token_endpoint;

use std::time::{Duration, Instant};

use std::collections::BTreeMap;

use rand::Rng as _;
use secrecy::SecretString;
use tb_shared::ids::ScopeSet;

use crate::credentials::{ClientCredentials, UpstreamEndpoint};
use breaker::CircuitBreaker;
use client_token::ClientTokenApi;

/// Client metadata sent with a token request (the signed caller claims, `tb_shared::context::claims`).
pub type ClientMetadata = BTreeMap<String, String>;

/// Largest token response read. A Cognito access token is 1–2 KiB; anything far larger is not a token response.
pub(super) const MAX_RESPONSE_BYTES: usize = 64 * 1024;
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

/// The pooled clients plus breaker. Built once at cold start and shared by every invocation, so TLS sessions and
/// connections to Cognito are reused while the Lambda stays warm.
#[derive(Debug)]
pub struct Upstream {
    http: reqwest::Client,
    client_token: ClientTokenApi,
    settings: UpstreamSettings,
    breaker: CircuitBreaker,
}

/// One attempt's classified outcome.
pub(super) enum Attempt {
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
        let client_token = ClientTokenApi::new(settings.connect_timeout);
        Ok(Upstream { http, client_token, settings, breaker })
    }

    /// Makes the `GetClientToken` mode use `sdk` instead of the configuration read from the function's environment
    /// ([`tb_shared::aws::lambda_sdk_config`]): for a host that is not Lambda and has no AWS credentials in its
    /// environment (the local stack, tests). Answers whether it took effect: it cannot once a `GetClientToken` call
    /// has been made.
    pub fn use_aws_config(&self, sdk: aws_config::SdkConfig) -> bool {
        self.client_token.use_aws_config(sdk)
    }

    /// Whether the breaker currently fails requests fast.
    pub fn breaker_open(&self) -> bool {
        self.breaker.is_open(Instant::now())
    }

    /// Asks for a client-credentials token with exactly `scopes` and `metadata`, from wherever `creds` says, giving
    /// up by `deadline` (the Lambda's, when known). At most two attempts, the second only after a timeout, 5xx or
    /// throttle and only if time remains.
    pub async fn request_token(
        &self,
        creds: &ClientCredentials,
        scopes: &ScopeSet,
        metadata: &ClientMetadata,
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
            let outcome = match &creds.upstream {
                UpstreamEndpoint::TokenEndpoint(url) => {
                    token_endpoint::attempt(&self.http, url, creds, scopes, metadata, timeout).await
                }
                UpstreamEndpoint::GetClientToken { region, endpoint_url } => {
                    self.client_token.attempt(region, endpoint_url.as_ref(), creds, scopes, metadata, timeout).await
                }
            };
            match outcome {
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
}

/// The checks both modes make on a successful answer: a Bearer token type, a positive lifetime, and a non-empty
/// token of sane length.
pub(super) fn checked_token(
    token_type: Option<&str>,
    expires_in: Option<u64>,
    access_token: Option<String>,
) -> Result<(SecretString, u64), UpstreamError> {
    if !token_type.is_some_and(|t| t.eq_ignore_ascii_case("bearer")) {
        return Err(UpstreamError::BadResponse("token_type is not Bearer"));
    }
    let expires_in =
        expires_in.filter(|&n| n > 0).ok_or(UpstreamError::BadResponse("expires_in is not a positive integer"))?;
    let access_token = access_token
        .filter(|t| !t.is_empty() && t.len() <= MAX_ACCESS_TOKEN_BYTES)
        .ok_or(UpstreamError::BadResponse("access_token missing, empty or too long"))?;
    Ok((SecretString::from(access_token), expires_in))
}
