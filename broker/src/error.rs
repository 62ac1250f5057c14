//! The broker's one error type, and the one place that turns it into what a caller sees.
//!
//! Every refusal the handler can produce is a [`BrokerError`] variant. [`BrokerError::answer`] is the only mapping to
//! an HTTP status, an RFC 6749 §5.2 error code, a `Retry-After` value and a caller-facing description. Descriptions
//! are fixed strings chosen here: they never carry an upstream body, a table or parameter name, the Cognito domain or
//! any text that came from a dependency's error, so nothing internal can leak through an error body. What operators
//! need (the internal reason) goes to logs via [`BrokerError::code`], which is also a fixed string.

use std::time::Duration;

use tb_shared::context::{ContextError, MacError};

/// `Retry-After` when the quota store cannot answer: a brief DynamoDB blip should not stall callers long.
pub(crate) const RETRY_AFTER_QUOTA_STORE: Duration = Duration::from_secs(2);
/// `Retry-After` when credentials cannot be read and none is cached: SSM outages tend to last longer.
pub(crate) const RETRY_AFTER_CREDENTIALS: Duration = Duration::from_secs(5);
/// `Retry-After` when the context-MAC keys cannot be read and the cached set is past its stale bound: like the
/// credentials, they live in SSM.
pub(crate) const RETRY_AFTER_CONTEXT_KEYS: Duration = Duration::from_secs(5);
/// `Retry-After` when Cognito timed out or answered 5xx/throttled and the breaker is still closed.
pub(crate) const RETRY_AFTER_UPSTREAM: Duration = Duration::from_secs(2);

/// Everything that can stop a grant. Variants carry only what the mapping or the logs need, never a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BrokerError {
    /// Not `POST`.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// Not `application/x-www-form-urlencoded`.
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// Body larger than the limit after base64 decoding.
    #[error("body too large")]
    PayloadTooLarge,
    /// Malformed body, repeated or forbidden parameter, missing grant type. The string is a fixed description.
    #[error("invalid request: {0}")]
    InvalidRequest(&'static str),
    /// A grant type other than `client_credentials`.
    #[error("unsupported grant type")]
    UnsupportedGrantType,
    /// Scope malformed, not allowed, or nothing to ask for.
    #[error("invalid scope: {0}")]
    InvalidScope(&'static str),
    /// The body's `client_id` is not the caller the authorizer established.
    #[error("client_id does not match the authenticated caller")]
    InvalidClient,
    /// The proxy event carries no usable authorizer context: the gateway is misconfigured or was bypassed.
    #[error("authorizer context unusable: {0}")]
    MissingContext(ContextError),
    /// The authorizer context's MAC does not verify: the event was not made by API Gateway after this project's
    /// authorizer (a direct invoke with a context of its own), or it was made for another API or stage, or too long
    /// ago. The caller sees the same answer as for a missing context.
    #[error("authorizer context refused: {0}")]
    ForgedContext(MacError),
    /// The context-MAC keys cannot be read and the last set read is past its stale bound: no context can be
    /// verified, so nothing is issued until the store answers again.
    #[error("context keys unavailable")]
    ContextKeysUnavailable,
    /// The caller's tokens must be bound to its client certificate, but the context carries no certificate
    /// thumbprint (an authorizer that predates certificate binding, during a deployment): nothing is issued unbound.
    #[error("certificate binding impossible: the context names no certificate thumbprint")]
    CertificateBindingUnavailable,
    /// The caller is unknown to the broker's policy or disabled (the authorizer should already have denied it).
    #[error("access denied: {0}")]
    AccessDenied(&'static str),
    /// A quota window is full.
    #[error("quota exhausted in window {window}")]
    QuotaExhausted {
        /// Until every full window has reset.
        retry_after: Duration,
        /// The name of a full window, for logs.
        window: String,
    },
    /// The quota store could not answer; the broker fails closed.
    #[error("quota store unavailable")]
    QuotaUnavailable,
    /// No credentials could be had for the caller's app client.
    #[error("credentials unavailable")]
    CredentialsUnavailable,
    /// Credentials are missing or malformed in the store: an operator error, not an outage.
    #[error("credentials misconfigured")]
    CredentialsMisconfigured,
    /// Cognito is down, slow, throttling, or the breaker is open.
    #[error("upstream unavailable: {reason}")]
    UpstreamUnavailable {
        /// A fixed code for logs (timeout, 5xx, throttled, breaker open).
        reason: &'static str,
        /// What the caller is told to wait.
        retry_after: Duration,
    },
    /// Cognito refused our own client credentials even after one refresh, or the credentials are held back
    /// because Cognito refused them and the store still holds them.
    #[error("upstream refused our client credentials")]
    UpstreamInvalidClient,
    /// Cognito answered something we cannot pass on (bad shape, extra scopes, an error we did not expect).
    #[error("upstream answer rejected: {0}")]
    UpstreamBadResponse(&'static str),
    /// Cognito issued a token that lives longer than the caller's maximum lifetime.
    #[error("upstream token outlives the caller's maximum lifetime")]
    TokenLifetimeTooLong,
}

/// What the caller sees for an error: status, RFC 6749 error code, fixed description, optional `Retry-After`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorAnswer {
    pub status: u16,
    pub code: &'static str,
    pub description: &'static str,
    pub retry_after: Option<Duration>,
    /// `Allow` header value, for 405.
    pub allow: Option<&'static str>,
}

impl BrokerError {
    /// THE mapping from error to response. Changing a status or code anywhere means changing it here.
    ///
    /// A caller the policy does not allow answers 403 `unauthorized_client`: RFC 6749 §5.2 defines it for an
    /// authenticated client that may not use this grant, which is exactly the case (`access_denied` belongs to the
    /// authorization endpoint, §4.1.2.1, and a generic OAuth client may not recognise it at a token endpoint).
    ///
    /// A full quota answers 429 with `temporarily_unavailable`: RFC 6749 registers no rate-limit code, the status
    /// and `Retry-After` carry the meaning, and a generic OAuth client treats the code as "try later", which is right.
    pub fn answer(&self) -> ErrorAnswer {
        let a = |status, code, description| ErrorAnswer { status, code, description, retry_after: None, allow: None };
        match self {
            BrokerError::MethodNotAllowed => {
                ErrorAnswer { allow: Some("POST"), ..a(405, "invalid_request", "the token endpoint accepts only POST") }
            }
            BrokerError::UnsupportedMediaType => {
                a(415, "invalid_request", "the request body must be application/x-www-form-urlencoded")
            }
            BrokerError::PayloadTooLarge => a(413, "invalid_request", "the request body is too large"),
            BrokerError::InvalidRequest(d) => a(400, "invalid_request", d),
            BrokerError::UnsupportedGrantType => {
                a(400, "unsupported_grant_type", "only the client_credentials grant is supported")
            }
            BrokerError::InvalidScope(d) => a(400, "invalid_scope", d),
            BrokerError::InvalidClient => a(401, "invalid_client", "client_id does not match the authenticated client"),
            BrokerError::MissingContext(_)
            | BrokerError::ForgedContext(_)
            | BrokerError::CertificateBindingUnavailable => {
                a(500, "server_error", "the request could not be processed")
            }
            BrokerError::AccessDenied(_) => a(403, "unauthorized_client", "this client may not obtain tokens"),
            BrokerError::QuotaExhausted { retry_after, .. } => ErrorAnswer {
                retry_after: Some(*retry_after),
                ..a(429, "temporarily_unavailable", "the grant quota for this client is exhausted")
            },
            BrokerError::ContextKeysUnavailable => ErrorAnswer {
                retry_after: Some(RETRY_AFTER_CONTEXT_KEYS),
                ..a(503, "temporarily_unavailable", "the service is temporarily unavailable")
            },
            BrokerError::QuotaUnavailable => ErrorAnswer {
                retry_after: Some(RETRY_AFTER_QUOTA_STORE),
                ..a(503, "temporarily_unavailable", "the service is temporarily unavailable")
            },
            BrokerError::CredentialsUnavailable => ErrorAnswer {
                retry_after: Some(RETRY_AFTER_CREDENTIALS),
                ..a(503, "temporarily_unavailable", "the service is temporarily unavailable")
            },
            BrokerError::UpstreamUnavailable { retry_after, .. } => ErrorAnswer {
                retry_after: Some(*retry_after),
                ..a(503, "temporarily_unavailable", "the service is temporarily unavailable")
            },
            BrokerError::CredentialsMisconfigured
            | BrokerError::UpstreamInvalidClient
            | BrokerError::UpstreamBadResponse(_)
            | BrokerError::TokenLifetimeTooLong => a(502, "server_error", "the token could not be obtained"),
        }
    }

    /// Whether a quota charge taken for this request is given back when it fails this way.
    ///
    /// Yes for outages that are nobody's doing and pass (the 503s after the charge: the credential store or Cognito
    /// down, slow, throttling, the breaker open, no time left). No for failures that the same request would meet
    /// again (the 502s: a secret Cognito refuses, a missing or malformed parameter, an answer the broker cannot use,
    /// a token longer-lived than the caller may hold): refunding those would make every retry free, so a caller could
    /// spend Cognito's account-wide rate and SSM's read rate without limit while its quota never moved. Keeping the
    /// charge lets the quota bound how often a failing request reaches them. The other variants happen before any
    /// charge and answer `false`.
    pub(crate) fn refunds_charge(&self) -> bool {
        match self {
            BrokerError::CredentialsUnavailable | BrokerError::UpstreamUnavailable { .. } => true,
            BrokerError::CredentialsMisconfigured
            | BrokerError::UpstreamInvalidClient
            | BrokerError::UpstreamBadResponse(_)
            | BrokerError::TokenLifetimeTooLong => false,
            BrokerError::MethodNotAllowed
            | BrokerError::UnsupportedMediaType
            | BrokerError::PayloadTooLarge
            | BrokerError::InvalidRequest(_)
            | BrokerError::UnsupportedGrantType
            | BrokerError::InvalidScope(_)
            | BrokerError::InvalidClient
            | BrokerError::MissingContext(_)
            | BrokerError::ForgedContext(_)
            | BrokerError::ContextKeysUnavailable
            | BrokerError::CertificateBindingUnavailable
            | BrokerError::AccessDenied(_)
            | BrokerError::QuotaExhausted { .. }
            | BrokerError::QuotaUnavailable => false,
        }
    }

    /// A short, fixed, log- and metric-safe name for why the request was refused (the EMF `Reason` dimension).
    pub fn code(&self) -> &'static str {
        match self {
            BrokerError::MethodNotAllowed => "method_not_allowed",
            BrokerError::UnsupportedMediaType => "unsupported_media_type",
            BrokerError::PayloadTooLarge => "payload_too_large",
            BrokerError::InvalidRequest(_) => "invalid_request",
            BrokerError::UnsupportedGrantType => "unsupported_grant_type",
            BrokerError::InvalidScope(_) => "invalid_scope",
            BrokerError::InvalidClient => "client_id_mismatch",
            BrokerError::MissingContext(_) => "missing_authorizer_context",
            BrokerError::ForgedContext(_) => "forged_authorizer_context",
            BrokerError::ContextKeysUnavailable => "context_keys_unavailable",
            BrokerError::CertificateBindingUnavailable => "certificate_binding_unavailable",
            BrokerError::AccessDenied(r) => r,
            BrokerError::QuotaExhausted { .. } => "quota_exhausted",
            BrokerError::QuotaUnavailable => "quota_store_unavailable",
            BrokerError::CredentialsUnavailable => "credentials_unavailable",
            BrokerError::CredentialsMisconfigured => "credentials_misconfigured",
            BrokerError::UpstreamUnavailable { reason, .. } => reason,
            BrokerError::UpstreamInvalidClient => "upstream_invalid_client",
            BrokerError::UpstreamBadResponse(_) => "upstream_bad_response",
            BrokerError::TokenLifetimeTooLong => "token_lifetime_exceeds_max",
        }
    }
}

/// `Retry-After` in whole seconds, rounded up and at least 1 (a 0 would invite an immediate retry storm).
pub(crate) fn retry_after_seconds(d: Duration) -> u64 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_5xx_and_429_carries_retry_after_and_no_internal_names() {
        let all = [
            BrokerError::MethodNotAllowed,
            BrokerError::UnsupportedMediaType,
            BrokerError::PayloadTooLarge,
            BrokerError::InvalidRequest("x"),
            BrokerError::UnsupportedGrantType,
            BrokerError::InvalidScope("x"),
            BrokerError::InvalidClient,
            BrokerError::MissingContext(ContextError::Missing("callerId")),
            BrokerError::ForgedContext(MacError::Mismatch),
            BrokerError::ContextKeysUnavailable,
            BrokerError::CertificateBindingUnavailable,
            BrokerError::AccessDenied("caller_unknown"),
            BrokerError::QuotaExhausted { retry_after: Duration::from_secs(9), window: "day".into() },
            BrokerError::QuotaUnavailable,
            BrokerError::CredentialsUnavailable,
            BrokerError::CredentialsMisconfigured,
            BrokerError::UpstreamUnavailable { reason: "upstream_timeout", retry_after: Duration::from_secs(2) },
            BrokerError::UpstreamInvalidClient,
            BrokerError::UpstreamBadResponse("x"),
            BrokerError::TokenLifetimeTooLong,
        ];
        for e in all {
            let a = e.answer();
            if a.status == 429 || a.status == 503 {
                assert!(a.retry_after.is_some(), "{e:?}");
            }
            let d = a.description.to_ascii_lowercase();
            for word in ["dynamo", "ssm", "cognito", "table", "parameter store", "amazoncognito"] {
                assert!(!d.contains(word), "{e:?} names {word}");
            }
        }
    }

    /// A forged context gets exactly the missing-context answer: a prober learns nothing from it about the MAC.
    #[test]
    fn a_forged_context_is_answered_like_a_missing_one() {
        let missing = BrokerError::MissingContext(ContextError::Missing("callerId")).answer();
        for reason in MacError::ALL {
            assert_eq!(BrokerError::ForgedContext(reason).answer(), missing, "{reason:?}");
        }
        assert_eq!(BrokerError::ForgedContext(MacError::Expired).code(), "forged_authorizer_context");
        let keys = BrokerError::ContextKeysUnavailable.answer();
        assert_eq!(
            (keys.status, keys.code, keys.retry_after),
            (503, "temporarily_unavailable", Some(RETRY_AFTER_CONTEXT_KEYS))
        );
    }

    #[test]
    fn only_passing_outages_refund_the_charge() {
        assert!(BrokerError::CredentialsUnavailable.refunds_charge());
        assert!(BrokerError::UpstreamUnavailable { reason: "upstream_5xx", retry_after: Duration::from_secs(2) }
            .refunds_charge());
        for e in [
            BrokerError::CredentialsMisconfigured,
            BrokerError::UpstreamInvalidClient,
            BrokerError::UpstreamBadResponse("upstream refused the approved scopes"),
            BrokerError::TokenLifetimeTooLong,
        ] {
            assert!(!e.refunds_charge(), "{e:?}");
            assert_eq!(e.answer().status, 502, "{e:?}");
        }
    }

    #[test]
    fn retry_after_rounds_up_and_is_never_zero() {
        assert_eq!(retry_after_seconds(Duration::ZERO), 1);
        assert_eq!(retry_after_seconds(Duration::from_millis(1500)), 2);
        assert_eq!(retry_after_seconds(Duration::from_secs(86_399)), 86_399);
    }
}
