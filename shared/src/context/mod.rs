//! The caller-context contract: the exact `context` keys the authorizer returns and the broker reads.
//!
//! API Gateway copies an authorizer's `context` map into the proxy event's `requestContext.authorizer`, next to
//! `principalId` and `integrationLatency`. The authorizer must return flat string values; API Gateway may still
//! hand them on as strings, numbers or booleans, so the reader accepts all three and converts to strings.
//! The broker treats this map as the only source of caller identity, and only once its MAC verifies ([`mac`]): the
//! map travels through a Lambda invoke, which any principal allowed to invoke the broker can make with a map of its
//! own.

use std::collections::HashMap;
use std::fmt;

pub mod claims;
pub mod keys;
pub mod mac;
pub mod ssm;

pub use claims::{CallerClaims, ClaimsError};
pub use keys::{ContextKey, KeyError, KeyRing, KeyRingConfig, KeySet, KeySource, MemoryKeySource};
pub use mac::{sign, verify, ApiBinding, MacError, KEY_MAC, KEY_MAC_EXPIRES, KEY_MAC_KEY_ID, MAC_KEYS};
pub use ssm::SsmKeySource;

use serde_json::Value;

use crate::ids::CallerId;

/// Key of the registered caller id.
pub const KEY_CALLER_ID: &str = "callerId";
/// Key of how the caller authenticated (`mtls` or `jwt`).
pub const KEY_AUTH_METHOD: &str = "authMethod";
/// Key of a non-secret fingerprint of the verified credential: for a client certificate its RFC 8705 `x5t#S256`
/// thumbprint, for a partner JWT a SHA-256 prefix of the token.
pub const KEY_CREDENTIAL_FINGERPRINT: &str = "credentialFingerprint";
/// Key of the policy version the authorizer decided with.
pub const KEY_POLICY_VERSION: &str = "policyVersion";
/// Every key of the contract, in the order the authorizer writes them.
pub const KEYS: [&str; 4] = [KEY_CALLER_ID, KEY_AUTH_METHOD, KEY_CREDENTIAL_FINGERPRINT, KEY_POLICY_VERSION];

/// Longest fingerprint or version string accepted from the context.
const MAX_VALUE_LEN: usize = 128;

/// How the caller proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    /// A client certificate presented on the mutual-TLS custom domain.
    Mtls,
    /// A partner JWT in `Authorization: Bearer`.
    Jwt,
}

impl AuthMethod {
    /// The wire form used in the context and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Mtls => "mtls",
            AuthMethod::Jwt => "jwt",
        }
    }
}

impl fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the authorizer established about a caller. Nothing in it is secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerContext {
    /// The registered caller the credential maps to; the broker grants and counts quota under this id.
    pub caller_id: CallerId,
    /// Whether the caller came in with a client certificate or a partner JWT.
    pub auth_method: AuthMethod,
    /// For a client certificate, its RFC 8705 `x5t#S256` thumbprint (base64url, no padding, of the SHA-256 of the
    /// DER): what a certificate-bound token carries in `cnf`. For a partner JWT, the first 16 hex digits of the
    /// token's SHA-256 (a token is a bearer credential, so no more of its hash than needed to match log lines).
    /// Either way it matches the authorizer's and the broker's log lines about one credential.
    pub credential_fingerprint: String,
    /// The authorizer's policy version; the broker logs it beside its own, so a mismatch shows a deployment in flight.
    pub policy_version: String,
}

/// Why a context map could not be read. Any of these means the gateway is misconfigured or the request did not
/// pass through the authorizer: the broker answers 500 and issues nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContextError {
    /// The key is absent or null: the route has no authorizer, or it is not this project's authorizer.
    #[error("authorizer context is missing key {0}")]
    Missing(&'static str),
    /// The key holds an object or array, which API Gateway never produces from an authorizer's context.
    #[error("authorizer context key {0} has a value that is not a string, number or boolean")]
    NotScalar(&'static str),
    /// The key holds a value this contract never writes (bad caller id, unknown method, oversized string).
    #[error("authorizer context key {0} has an invalid value")]
    Invalid(&'static str),
}

impl CallerContext {
    /// The `context` object the authorizer returns: flat string values only.
    pub fn to_map(&self) -> HashMap<String, Value> {
        let mut m = HashMap::with_capacity(KEYS.len());
        m.insert(KEY_CALLER_ID.into(), Value::String(self.caller_id.to_string()));
        m.insert(KEY_AUTH_METHOD.into(), Value::String(self.auth_method.as_str().into()));
        m.insert(KEY_CREDENTIAL_FINGERPRINT.into(), Value::String(self.credential_fingerprint.clone()));
        m.insert(KEY_POLICY_VERSION.into(), Value::String(self.policy_version.clone()));
        m
    }

    /// Reads the context from the proxy event's `requestContext.authorizer` fields.
    pub fn from_map(m: &HashMap<String, Value>) -> Result<Self, ContextError> {
        let caller = scalar(m, KEY_CALLER_ID)?;
        let caller_id = CallerId::try_from(caller.as_str()).map_err(|_| ContextError::Invalid(KEY_CALLER_ID))?;
        let auth_method = match scalar(m, KEY_AUTH_METHOD)?.as_str() {
            "mtls" => AuthMethod::Mtls,
            "jwt" => AuthMethod::Jwt,
            _ => return Err(ContextError::Invalid(KEY_AUTH_METHOD)),
        };
        let credential_fingerprint = bounded(m, KEY_CREDENTIAL_FINGERPRINT)?;
        let policy_version = bounded(m, KEY_POLICY_VERSION)?;
        Ok(CallerContext { caller_id, auth_method, credential_fingerprint, policy_version })
    }
}

fn scalar(m: &HashMap<String, Value>, key: &'static str) -> Result<String, ContextError> {
    match m.get(key) {
        None | Some(Value::Null) => Err(ContextError::Missing(key)),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        Some(Value::Bool(b)) => Ok(b.to_string()),
        Some(_) => Err(ContextError::NotScalar(key)),
    }
}

fn bounded(m: &HashMap<String, Value>, key: &'static str) -> Result<String, ContextError> {
    let v = scalar(m, key)?;
    if v.is_empty() || v.len() > MAX_VALUE_LEN || !v.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ContextError::Invalid(key));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> CallerContext {
        CallerContext {
            caller_id: CallerId::try_from("order-processing").unwrap(),
            auth_method: AuthMethod::Mtls,
            credential_fingerprint: "9f86d081884c7d65".into(),
            policy_version: "0123456789abcdef".into(),
        }
    }

    #[test]
    fn context_values_are_flat_strings() {
        for (k, v) in sample().to_map() {
            assert!(v.is_string(), "{k} is not a string");
            assert!(KEYS.contains(&k.as_str()));
        }
    }

    /// GIVEN the authorizer's context WHEN it travels through the proxy event JSON that API Gateway builds
    /// THEN the broker reads back the same caller.
    #[test]
    fn round_trip_through_proxy_event_json() {
        let ctx = sample();
        let mut authorizer = serde_json::Map::new();
        authorizer.insert("principalId".into(), json!("order-processing"));
        authorizer.insert("integrationLatency".into(), json!(12));
        for (k, v) in ctx.to_map() {
            authorizer.insert(k, v);
        }
        let event = json!({
            "resource": "/oauth2/token", "path": "/oauth2/token", "httpMethod": "POST",
            "headers": {"content-type": "application/x-www-form-urlencoded"},
            "multiValueHeaders": {}, "queryStringParameters": null, "multiValueQueryStringParameters": null,
            "pathParameters": null, "stageVariables": null,
            "requestContext": {
                "accountId": "123456789012", "resourceId": "abc123", "stage": "prod", "requestId": "r-1",
                "identity": {"sourceIp": "203.0.113.7"}, "resourcePath": "/oauth2/token", "httpMethod": "POST",
                "apiId": "a1b2c3", "authorizer": authorizer
            },
            "body": "grant_type=client_credentials", "isBase64Encoded": false
        });
        let req: aws_proxy::ApiGatewayProxyRequest = serde_json::from_value(event).unwrap();
        let back = CallerContext::from_map(&req.request_context.authorizer.fields).unwrap();
        assert_eq!(back, ctx);
    }

    #[test]
    fn numbers_and_booleans_arrive_as_strings() {
        let mut m = sample().to_map();
        m.insert(KEY_POLICY_VERSION.into(), json!(42));
        m.insert(KEY_CREDENTIAL_FINGERPRINT.into(), json!(true));
        let back = CallerContext::from_map(&m).unwrap();
        assert_eq!(back.policy_version, "42");
        assert_eq!(back.credential_fingerprint, "true");
    }

    #[test]
    fn missing_or_bad_values_are_errors() {
        for key in KEYS {
            let mut m = sample().to_map();
            m.remove(key);
            assert_eq!(CallerContext::from_map(&m), Err(ContextError::Missing(key)));
        }
        let mut m = sample().to_map();
        m.insert(KEY_CALLER_ID.into(), json!({"nested": "x"}));
        assert_eq!(CallerContext::from_map(&m), Err(ContextError::NotScalar(KEY_CALLER_ID)));
        let mut m = sample().to_map();
        m.insert(KEY_CALLER_ID.into(), json!("has space"));
        assert_eq!(CallerContext::from_map(&m), Err(ContextError::Invalid(KEY_CALLER_ID)));
        let mut m = sample().to_map();
        m.insert(KEY_AUTH_METHOD.into(), json!("iam"));
        assert_eq!(CallerContext::from_map(&m), Err(ContextError::Invalid(KEY_AUTH_METHOD)));
        assert_eq!(CallerContext::from_map(&HashMap::new()), Err(ContextError::Missing(KEY_CALLER_ID)));
    }

    /// The proxy event type, imported only for the round-trip test.
    mod aws_proxy {
        pub(super) use aws_lambda_events::apigw::ApiGatewayProxyRequest;
    }
}
