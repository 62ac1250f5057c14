//! The trigger's decision: for a client-credentials grant, verify the broker's signed client metadata and write the
//! caller claims into the access token, or refuse so Cognito fails the token; for every other token, change nothing.
//!
//! Pure: the key set and the time are handed in, so the Lambda, the tests and the property tests run the same code.

use std::collections::{BTreeMap, HashMap};
use std::time::SystemTime;

use serde::Deserialize;
use serde_json::{Map, Value};
use tb_shared::context::claims::{self, CallerClaims, ClaimsError};
use tb_shared::context::KeySet;

use crate::event::{
    AccessTokenGeneration, ClaimsAndScopeOverrideDetails, TriggerEvent, CLIENT_CREDENTIALS, EVENT_VERSION,
};
use crate::prefix::ClaimPrefix;

/// The claim of RFC 8705 §3.1 that binds a token to a certificate.
pub const CNF_CLAIM: &str = "cnf";
/// The member of `cnf` holding the certificate's SHA-256 thumbprint.
pub const CNF_X5T_S256: &str = "x5t#S256";

/// Longest trigger source or client id copied into a [`Customized`] for logging; longer ones are not Cognito's.
const MAX_LOGGED_LEN: usize = 128;

/// Why the trigger refused a client-credentials token. The Lambda returns an error and Cognito fails the token
/// request, so no token without verified caller claims is ever issued. No variant carries a metadata value, a MAC
/// or anything else from the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The event is not a pre-token-generation event: not an object, no trigger source, or a field of the wrong
    /// type.
    #[error("the event is not a pre-token-generation event this trigger can read")]
    MalformedEvent,
    /// A client-credentials event that is not version 3: the pool is not configured with `V3_0`.
    #[error("the client-credentials event is not of version {EVENT_VERSION} (the trigger needs LambdaVersion V3_0)")]
    UnexpectedVersion,
    /// The event does not name the app client, so the MAC cannot be checked against it.
    #[error("the event names no app client")]
    MissingClientId,
    /// The client metadata is missing, malformed or does not verify.
    #[error("caller claims refused: {0}")]
    Metadata(ClaimsError),
    /// No usable context key set (SSM failing past the key ring's stale bound): nothing can be verified.
    #[error("no usable context key set")]
    KeysUnavailable,
}

impl Refusal {
    /// The fixed, low-cardinality name used in the decision log and as the `Reason` metric dimension.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::MalformedEvent => "malformed_event",
            Refusal::UnexpectedVersion => "unexpected_version",
            Refusal::MissingClientId => "missing_client_id",
            Refusal::Metadata(ClaimsError::Missing) => "metadata_missing",
            Refusal::Metadata(ClaimsError::UnexpectedKey) => "metadata_unexpected_key",
            Refusal::Metadata(ClaimsError::Malformed) => "metadata_malformed",
            Refusal::Metadata(ClaimsError::UnknownKey) => "mac_unknown_key",
            Refusal::Metadata(ClaimsError::Expired) => "mac_expired",
            Refusal::Metadata(ClaimsError::Mismatch) => "mac_mismatch",
            Refusal::KeysUnavailable => "context_keys_unavailable",
        }
    }
}

/// What the trigger did with one event, with what the decision log may show about it.
#[derive(Debug)]
pub struct Customized {
    /// The event to return to Cognito, or the refusal.
    pub result: Result<Value, Refusal>,
    /// The event's trigger source, if it had a printable one of sane length.
    pub trigger_source: Option<String>,
    /// The app client the token is for, if the event named one (printable, of sane length).
    pub client_id: Option<String>,
    /// The verified claims, only when they were written into the token.
    pub claims: Option<CallerClaims>,
}

/// The event with `response.claimsAndScopeOverrideDetails` filled in from verified client metadata (a
/// client-credentials grant), the event unchanged (any other trigger source), or a [`Refusal`].
pub fn customize(event: Value, prefix: &ClaimPrefix, keys: &KeySet, now: SystemTime) -> Result<Value, Refusal> {
    customize_traced(event, prefix, Some(keys), now).result
}

/// Whether [`customize`] needs the key set for `event` (a client-credentials grant). The Lambda reads the key ring
/// only then, so a key-store outage never touches users' sign-ins.
pub fn needs_keys(event: &Value) -> bool {
    event.get("triggerSource").and_then(Value::as_str) == Some(CLIENT_CREDENTIALS)
}

/// [`customize`], with what the decision log needs. `keys` is `None` when no usable key set could be had: a
/// client-credentials token is then refused ([`Refusal::KeysUnavailable`]); any other passes unchanged.
pub fn customize_traced(event: Value, prefix: &ClaimPrefix, keys: Option<&KeySet>, now: SystemTime) -> Customized {
    let mut out =
        Customized { result: Err(Refusal::MalformedEvent), trigger_source: None, client_id: None, claims: None };
    let Some(source) = event.get("triggerSource").and_then(Value::as_str) else {
        return out;
    };
    out.trigger_source = loggable(source);
    out.client_id = event.pointer("/callerContext/clientId").and_then(Value::as_str).and_then(loggable);
    if source != CLIENT_CREDENTIALS {
        // A user's sign-in or refresh: the broker is not involved, and metadata from a user flow is not ours to read.
        out.result = Ok(event);
        return out;
    }
    let Some(keys) = keys else {
        out.result = Err(Refusal::KeysUnavailable);
        return out;
    };
    match verified_claims(&event, keys, now) {
        Ok(verified) => {
            out.result = with_claims(event, prefix, &verified);
            out.claims = out.result.is_ok().then_some(verified);
        }
        Err(refusal) => out.result = Err(refusal),
    }
    out
}

fn loggable(s: &str) -> Option<String> {
    (!s.is_empty() && s.len() <= MAX_LOGGED_LEN && s.bytes().all(|b| b.is_ascii_graphic())).then(|| s.to_owned())
}

fn verified_claims(event: &Value, keys: &KeySet, now: SystemTime) -> Result<CallerClaims, Refusal> {
    let parsed = TriggerEvent::deserialize(event).map_err(|_| Refusal::MalformedEvent)?;
    if parsed.version.as_deref() != Some(EVENT_VERSION) {
        return Err(Refusal::UnexpectedVersion);
    }
    let client_id =
        parsed.caller_context.and_then(|c| c.client_id).filter(|id| !id.is_empty()).ok_or(Refusal::MissingClientId)?;
    let request = parsed.request.ok_or(Refusal::MalformedEvent)?;
    let metadata = metadata(request.client_metadata)?;
    claims::verify(&metadata, &client_id, keys, now).map_err(Refusal::Metadata)
}

/// Client metadata is a map of strings; `null` or absent means the request did not come through the broker.
fn metadata(value: Option<Value>) -> Result<HashMap<String, String>, Refusal> {
    match value {
        None | Some(Value::Null) => Err(Refusal::Metadata(ClaimsError::Missing)),
        Some(Value::Object(map)) => map
            .into_iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k, s)),
                _ => Err(Refusal::Metadata(ClaimsError::Malformed)),
            })
            .collect(),
        Some(_) => Err(Refusal::Metadata(ClaimsError::Malformed)),
    }
}

/// The access-token claims of verified caller claims: the four context values under the prefix, and `cnf` only for
/// a certificate-bound token.
pub fn token_claims(prefix: &ClaimPrefix, verified: &CallerClaims) -> BTreeMap<String, Value> {
    let c = &verified.context;
    let mut claims = BTreeMap::new();
    claims.insert(prefix.claim(tb_shared::context::KEY_CALLER_ID), Value::String(c.caller_id.to_string()));
    claims.insert(prefix.claim(tb_shared::context::KEY_AUTH_METHOD), Value::String(c.auth_method.as_str().into()));
    claims.insert(
        prefix.claim(tb_shared::context::KEY_CREDENTIAL_FINGERPRINT),
        Value::String(c.credential_fingerprint.clone()),
    );
    claims.insert(prefix.claim(tb_shared::context::KEY_POLICY_VERSION), Value::String(c.policy_version.clone()));
    if let Some(thumbprint) = &verified.cert_thumbprint {
        let mut cnf = Map::new();
        cnf.insert(CNF_X5T_S256.into(), Value::String(thumbprint.clone()));
        claims.insert(CNF_CLAIM.into(), Value::Object(cnf));
    }
    claims
}

/// Writes the claims into `response.claimsAndScopeOverrideDetails`, replacing whatever Cognito put there (it sends
/// `null`): only verified claims ever reach the token. Every other field of the event is kept.
fn with_claims(mut event: Value, prefix: &ClaimPrefix, verified: &CallerClaims) -> Result<Value, Refusal> {
    let details = ClaimsAndScopeOverrideDetails {
        access_token_generation: AccessTokenGeneration { claims_to_add_or_override: token_claims(prefix, verified) },
    };
    let details = serde_json::to_value(details).map_err(|_| Refusal::MalformedEvent)?;
    let root = event.as_object_mut().ok_or(Refusal::MalformedEvent)?;
    let response = root.entry("response").or_insert(Value::Null);
    if response.is_null() {
        *response = Value::Object(Map::new());
    }
    response.as_object_mut().ok_or(Refusal::MalformedEvent)?.insert("claimsAndScopeOverrideDetails".into(), details);
    Ok(event)
}

#[cfg(test)]
#[path = "customize_tests.rs"]
mod tests;
