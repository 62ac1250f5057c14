//! The context MAC: what makes the caller context unforgeable by anyone who can invoke the broker directly.
//!
//! The broker takes its caller from `requestContext.authorizer`, which only API Gateway should be able to write. But
//! any principal allowed `lambda:InvokeFunction` on the broker can invoke it with a context of its own making. So
//! the authorizer adds an HMAC-SHA256 over a canonical encoding of every contract field, the API id and stage the
//! request came through (from the `methodArn`), and an expiry; the broker recomputes it with the same key before
//! anything else and refuses the request when it does not match.
//!
//! The three added context keys are [`KEY_MAC`], [`KEY_MAC_KEY_ID`] and [`KEY_MAC_EXPIRES`]. The expiry must outlast
//! API Gateway's authorizer cache (a cached context is replayed by the gateway itself for up to its TTL), and it
//! bounds how long a context captured from one request could be replayed on the same API and stage.
//!
//! Canonical encoding (version 1): the ASCII label `tb-context-mac-v1`, then for each of key id, expiry (decimal
//! seconds since the epoch), API id, stage, `callerId`, `authMethod`, `credentialFingerprint`, `policyVersion`, in
//! that order, the value's length as two big-endian bytes and its UTF-8 bytes. Length prefixes make the encoding
//! injective: no two different field lists encode alike, so no value can be moved from one field into another.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use super::keys::{ContextKey, KeySet, MAX_KEY_ID_LEN};
use super::CallerContext;

/// Context key of the MAC (base64url of the 32-byte HMAC-SHA256, no padding).
pub const KEY_MAC: &str = "contextMac";
/// Context key of the id of the key the MAC was made with (so two keys can be accepted during a rotation).
pub const KEY_MAC_KEY_ID: &str = "contextMacKeyId";
/// Context key of the MAC's expiry, seconds since the Unix epoch.
pub const KEY_MAC_EXPIRES: &str = "contextMacExpires";
/// The three keys the MAC adds to the context.
pub const MAC_KEYS: [&str; 3] = [KEY_MAC, KEY_MAC_KEY_ID, KEY_MAC_EXPIRES];

/// Longest MAC lifetime the broker accepts: API Gateway's longest authorizer cache TTL (3600 s). A context claiming
/// to live longer was not made by this authorizer's configuration.
pub const MAX_MAC_TTL: Duration = Duration::from_secs(3600);
/// Clock difference between the two functions' instances that the broker tolerates on the expiry's upper bound.
const CLOCK_SKEW: Duration = Duration::from_secs(60);

const LABEL: &[u8] = b"tb-context-mac-v1";
const MAC_LEN: usize = 32;
/// Length of the MAC in base64url without padding.
const MAC_B64_LEN: usize = 43;
/// Longest API id or stage name bound into the MAC (API Gateway ids are 10 characters, stage names at most 128).
const MAX_API_FIELD_LEN: usize = 128;

type HmacSha256 = Hmac<Sha256>;

/// The API Gateway API and stage a request came through: bound into the MAC so a context made for one API or
/// stage is refused on another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiBinding {
    /// The REST API id (`requestContext.apiId`; the fifth `:`-field's first `/`-part of the `methodArn`).
    pub api_id: String,
    /// The stage name (`requestContext.stage`; the second `/`-part of the `methodArn`'s resource).
    pub stage: String,
}

impl ApiBinding {
    /// The binding from an execute-api `methodArn` (`arn:aws:execute-api:region:account:apiId/stage/METHOD/path`),
    /// or `None` when it is not one.
    pub fn from_method_arn(arn: &str) -> Option<Self> {
        let mut parts = arn.splitn(6, ':');
        let (Some("arn"), Some(_partition), Some("execute-api"), Some(_region), Some(_account), Some(resource)) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let mut segments = resource.splitn(3, '/');
        let (Some(api_id), Some(stage)) = (segments.next(), segments.next()) else { return None };
        let binding = ApiBinding { api_id: api_id.to_owned(), stage: stage.to_owned() };
        binding.is_plausible().then_some(binding)
    }

    fn is_plausible(&self) -> bool {
        let ok = |s: &str| !s.is_empty() && s.len() <= MAX_API_FIELD_LEN && s.bytes().all(|b| b.is_ascii_graphic());
        ok(&self.api_id) && ok(&self.stage)
    }
}

/// Why a context's MAC was refused: the `Reason` of the broker's forged-context metric. None of them names the MAC,
/// the key or any context value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MacError {
    /// One of the MAC keys is absent: a context not made by this authorizer (or a gateway without it).
    #[error("the authorizer context carries no MAC")]
    Missing,
    /// A MAC key is present but not in the form the authorizer writes.
    #[error("the authorizer context MAC is malformed")]
    Malformed,
    /// The MAC names a key id the broker does not hold (an old key removed, or a forgery).
    #[error("the authorizer context MAC names an unknown key")]
    UnknownKey,
    /// The MAC's expiry has passed, or lies further ahead than any authorizer makes it.
    #[error("the authorizer context MAC has expired")]
    Expired,
    /// The MAC does not match: a tampered field, another key, or a context made for another API or stage.
    #[error("the authorizer context MAC does not match")]
    Mismatch,
}

impl MacError {
    /// The fixed, low-cardinality name used as a metric dimension and in logs.
    pub fn reason(self) -> &'static str {
        match self {
            MacError::Missing => "missing",
            MacError::Malformed => "malformed",
            MacError::UnknownKey => "unknown_key",
            MacError::Expired => "expired",
            MacError::Mismatch => "mismatch",
        }
    }

    /// Every reason, for tests and dashboards.
    pub const ALL: [MacError; 5] =
        [MacError::Missing, MacError::Malformed, MacError::UnknownKey, MacError::Expired, MacError::Mismatch];
}

/// The MAC over `fields` with `key`.
fn compute(key: &ContextKey, expires: u64, api: &ApiBinding, fields: [&str; 4]) -> HmacSha256 {
    let expires = expires.to_string();
    let mut mac = HmacSha256::new_from_slice(key.secret_bytes()).expect("HMAC takes a key of any length");
    mac.update(LABEL);
    for value in [key.id(), expires.as_str(), api.api_id.as_str(), api.stage.as_str()].into_iter().chain(fields) {
        // Every value is bounded far below 64 KiB where it is accepted; a longer one is cut off at the length field's
        // limit rather than wrapped, which can only make the MAC fail.
        let len = u16::try_from(value.len()).unwrap_or(u16::MAX);
        mac.update(&len.to_be_bytes());
        mac.update(&value.as_bytes()[..usize::from(len)]);
    }
    mac
}

fn contract_fields(ctx: &CallerContext) -> [String; 4] {
    [
        ctx.caller_id.to_string(),
        ctx.auth_method.as_str().to_owned(),
        ctx.credential_fingerprint.clone(),
        ctx.policy_version.clone(),
    ]
}

fn epoch_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// The authorizer's side: the three MAC entries to add to the context of `ctx`, made with the key set's signing key
/// for a request through `api`, valid until `now + ttl` (capped at [`MAX_MAC_TTL`]).
pub fn sign(
    ctx: &CallerContext,
    api: &ApiBinding,
    keys: &KeySet,
    now: SystemTime,
    ttl: Duration,
) -> [(&'static str, String); 3] {
    let key = keys.signing();
    let expires = epoch_seconds(now) + ttl.min(MAX_MAC_TTL).as_secs();
    let fields = contract_fields(ctx);
    let mac = compute(key, expires, api, [&fields[0], &fields[1], &fields[2], &fields[3]]);
    let tag = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    [(KEY_MAC, tag), (KEY_MAC_KEY_ID, key.id().to_owned()), (KEY_MAC_EXPIRES, expires.to_string())]
}

/// The broker's side: checks the MAC entries of `context` (the proxy event's `requestContext.authorizer`) against
/// the caller `ctx` read from it, the API and stage the event names, the accepted keys and the time. The comparison
/// of the MAC is constant-time.
pub fn verify(
    context: &HashMap<String, Value>,
    ctx: &CallerContext,
    api: &ApiBinding,
    keys: &KeySet,
    now: SystemTime,
) -> Result<(), MacError> {
    let text = |key: &str| match context.get(key) {
        None | Some(Value::Null) => Err(MacError::Missing),
        Some(Value::String(s)) => Ok(s.clone()),
        // API Gateway may turn a numeric-looking string into a number on the way.
        Some(Value::Number(n)) => Ok(n.to_string()),
        Some(_) => Err(MacError::Malformed),
    };
    let (tag, key_id, expires) = (text(KEY_MAC)?, text(KEY_MAC_KEY_ID)?, text(KEY_MAC_EXPIRES)?);
    if tag.len() != MAC_B64_LEN || key_id.is_empty() || key_id.len() > MAX_KEY_ID_LEN {
        return Err(MacError::Malformed);
    }
    let tag = URL_SAFE_NO_PAD.decode(tag.as_bytes()).map_err(|_| MacError::Malformed)?;
    if tag.len() != MAC_LEN {
        return Err(MacError::Malformed);
    }
    // Only the canonical decimal form the authorizer writes: no sign, no leading zeros, no spaces. (The MAC covers the
    // parsed value, so another spelling of the same second would otherwise verify too.)
    let expires_at: u64 = expires.parse().ok().filter(|v: &u64| v.to_string() == expires).ok_or(MacError::Malformed)?;
    let key = keys.get(&key_id).ok_or(MacError::UnknownKey)?;
    let now_s = epoch_seconds(now);
    if expires_at < now_s || expires_at > now_s + (MAX_MAC_TTL + CLOCK_SKEW).as_secs() {
        return Err(MacError::Expired);
    }
    let fields = contract_fields(ctx);
    let mac = compute(key, expires_at, api, [&fields[0], &fields[1], &fields[2], &fields[3]]);
    // `verify_slice` compares in constant time.
    mac.verify_slice(&tag).map_err(|_| MacError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::keys::KeySet;
    use crate::context::AuthMethod;
    use crate::ids::CallerId;

    const K1: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY"; // 32 bytes, base64url
    const K2: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA"; // 32 other bytes

    fn keys(doc: &str) -> KeySet {
        KeySet::parse(doc.as_bytes()).unwrap()
    }
    fn one_key() -> KeySet {
        keys(&format!(r#"{{"signing_key_id":"k1","keys":{{"k1":"{K1}"}}}}"#))
    }
    fn ctx() -> CallerContext {
        CallerContext {
            caller_id: CallerId::try_from("order-processing").unwrap(),
            auth_method: AuthMethod::Mtls,
            credential_fingerprint: "9f86d081884c7d65".into(),
            policy_version: "0123456789abcdef".into(),
        }
    }
    fn api() -> ApiBinding {
        ApiBinding { api_id: "a1b2c3d4e5".into(), stage: "v1".into() }
    }
    fn at(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(s)
    }
    fn signed(keys: &KeySet, now: SystemTime) -> HashMap<String, Value> {
        let mut m = ctx().to_map();
        for (k, v) in sign(&ctx(), &api(), keys, now, Duration::from_secs(300)) {
            m.insert(k.to_owned(), Value::String(v));
        }
        m
    }

    #[test]
    fn a_signed_context_verifies_until_it_expires() {
        let k = one_key();
        let m = signed(&k, at(1_000_000));
        assert_eq!(verify(&m, &ctx(), &api(), &k, at(1_000_000)), Ok(()));
        assert_eq!(verify(&m, &ctx(), &api(), &k, at(1_000_300)), Ok(()), "valid through its expiry second");
        assert_eq!(verify(&m, &ctx(), &api(), &k, at(1_000_301)), Err(MacError::Expired));
    }

    #[test]
    fn every_field_is_bound() {
        let k = one_key();
        let m = signed(&k, at(1_000_000));
        let now = at(1_000_000);
        let mut other = ctx();
        other.caller_id = CallerId::try_from("reporting").unwrap();
        assert_eq!(verify(&m, &other, &api(), &k, now), Err(MacError::Mismatch));
        let mut other = ctx();
        other.auth_method = AuthMethod::Jwt;
        assert_eq!(verify(&m, &other, &api(), &k, now), Err(MacError::Mismatch));
        let mut other = ctx();
        other.credential_fingerprint = "0000000000000000".into();
        assert_eq!(verify(&m, &other, &api(), &k, now), Err(MacError::Mismatch));
        let mut other = ctx();
        other.policy_version = "fedcba9876543210".into();
        assert_eq!(verify(&m, &other, &api(), &k, now), Err(MacError::Mismatch));
        let other_api = ApiBinding { api_id: "zzzzzzzzzz".into(), ..api() };
        assert_eq!(verify(&m, &ctx(), &other_api, &k, now), Err(MacError::Mismatch));
        let other_stage = ApiBinding { stage: "v2".into(), ..api() };
        assert_eq!(verify(&m, &ctx(), &other_stage, &k, now), Err(MacError::Mismatch));
        let mut later = m.clone();
        later.insert(KEY_MAC_EXPIRES.into(), Value::String("1000600".into()));
        assert_eq!(verify(&later, &ctx(), &api(), &k, now), Err(MacError::Mismatch), "a moved expiry");
    }

    #[test]
    fn length_prefixes_keep_values_from_moving_between_fields() {
        let k = one_key();
        let a = ApiBinding { api_id: "ab".into(), stage: "c".into() };
        let b = ApiBinding { api_id: "a".into(), stage: "bc".into() };
        let m = {
            let mut m = ctx().to_map();
            for (key, v) in sign(&ctx(), &a, &k, at(10), Duration::from_secs(60)) {
                m.insert(key.to_owned(), Value::String(v));
            }
            m
        };
        assert_eq!(verify(&m, &ctx(), &a, &k, at(10)), Ok(()));
        assert_eq!(verify(&m, &ctx(), &b, &k, at(10)), Err(MacError::Mismatch));
    }

    #[test]
    fn keys_decide_and_two_are_accepted_during_a_rotation() {
        let old = one_key();
        let both_old_signs = keys(&format!(r#"{{"signing_key_id":"k1","keys":{{"k1":"{K1}","k2":"{K2}"}}}}"#));
        let both_new_signs = keys(&format!(r#"{{"signing_key_id":"k2","keys":{{"k1":"{K1}","k2":"{K2}"}}}}"#));
        let new_only = keys(&format!(r#"{{"signing_key_id":"k2","keys":{{"k2":"{K2}"}}}}"#));
        let now = at(5_000);
        let by_old = signed(&old, now);
        let by_new = signed(&both_new_signs, now);
        assert_eq!(verify(&by_old, &ctx(), &api(), &both_old_signs, now), Ok(()));
        assert_eq!(verify(&by_old, &ctx(), &api(), &both_new_signs, now), Ok(()));
        assert_eq!(verify(&by_new, &ctx(), &api(), &both_old_signs, now), Ok(()));
        assert_eq!(verify(&by_new, &ctx(), &api(), &new_only, now), Ok(()));
        assert_eq!(verify(&by_old, &ctx(), &api(), &new_only, now), Err(MacError::UnknownKey));
        // The same id with another secret: a forger who guessed the id.
        let impostor = keys(&format!(r#"{{"signing_key_id":"k1","keys":{{"k1":"{K2}"}}}}"#));
        assert_eq!(verify(&signed(&impostor, now), &ctx(), &api(), &old, now), Err(MacError::Mismatch));
    }

    #[test]
    fn missing_and_malformed_entries_are_told_apart() {
        let k = one_key();
        let now = at(1_000_000);
        for key in MAC_KEYS {
            let mut m = signed(&k, now);
            m.remove(key);
            assert_eq!(verify(&m, &ctx(), &api(), &k, now), Err(MacError::Missing), "{key} removed");
            let mut m = signed(&k, now);
            m.insert(key.into(), Value::Null);
            assert_eq!(verify(&m, &ctx(), &api(), &k, now), Err(MacError::Missing), "{key} null");
            let mut m = signed(&k, now);
            m.insert(key.into(), serde_json::json!({"x": 1}));
            assert_eq!(verify(&m, &ctx(), &api(), &k, now), Err(MacError::Malformed), "{key} an object");
        }
        let good = signed(&k, now);
        let tag = good[KEY_MAC].as_str().unwrap().to_owned();
        for bad_tag in [String::new(), "A".repeat(42), "A".repeat(44), format!("{}=", &tag[..42]), "*".repeat(43)] {
            let mut m = good.clone();
            m.insert(KEY_MAC.into(), Value::String(bad_tag.clone()));
            assert_eq!(verify(&m, &ctx(), &api(), &k, now), Err(MacError::Malformed), "tag {bad_tag:?}");
        }
        for bad_expiry in ["", "-1", "1e6", " 1000300", "99999999999999999999999", "+1000300", "01000300"] {
            let mut m = good.clone();
            m.insert(KEY_MAC_EXPIRES.into(), Value::String(bad_expiry.into()));
            assert_eq!(verify(&m, &ctx(), &api(), &k, now), Err(MacError::Malformed), "expiry {bad_expiry:?}");
        }
        let mut m = good.clone();
        m.insert(KEY_MAC_KEY_ID.into(), Value::String("x".repeat(MAX_KEY_ID_LEN + 1)));
        assert_eq!(verify(&m, &ctx(), &api(), &k, now), Err(MacError::Malformed));
        let mut m = good.clone();
        m.insert(KEY_MAC_KEY_ID.into(), Value::String(String::new()));
        assert_eq!(verify(&m, &ctx(), &api(), &k, now), Err(MacError::Malformed), "an empty key id");
        let mut m = good.clone();
        m.insert(KEY_MAC_KEY_ID.into(), Value::String("x".repeat(MAX_KEY_ID_LEN)));
        assert_eq!(verify(&m, &ctx(), &api(), &k, now), Err(MacError::UnknownKey), "the longest id is well-formed");
        // A numeric expiry, as API Gateway may pass a numeric-looking string on, still verifies.
        let mut m = good.clone();
        let n: u64 = good[KEY_MAC_EXPIRES].as_str().unwrap().parse().unwrap();
        m.insert(KEY_MAC_EXPIRES.into(), serde_json::json!(n));
        assert_eq!(verify(&m, &ctx(), &api(), &k, now), Ok(()));
    }

    #[test]
    fn an_expiry_beyond_any_cache_ttl_is_refused() {
        let k = one_key();
        let now = at(1_000_000);
        let mut m = ctx().to_map();
        for (key, v) in sign(&ctx(), &api(), &k, now, Duration::from_secs(86_400)) {
            m.insert(key.to_owned(), Value::String(v));
        }
        assert_eq!(m[KEY_MAC_EXPIRES], Value::String((1_000_000 + 3600).to_string()), "sign caps the TTL");
        assert_eq!(verify(&m, &ctx(), &api(), &k, now), Ok(()));
        // Verified from an instance whose clock is behind by more than the tolerated skew.
        assert_eq!(verify(&m, &ctx(), &api(), &k, at(1_000_000 - 61)), Err(MacError::Expired));
        assert_eq!(verify(&m, &ctx(), &api(), &k, at(1_000_000 - 60)), Ok(()));
    }

    #[test]
    fn the_binding_comes_from_the_method_arn() {
        assert_eq!(
            ApiBinding::from_method_arn("arn:aws:execute-api:eu-west-1:123456789012:a1b2c3d4e5/v1/POST/oauth2/token"),
            Some(api())
        );
        assert_eq!(
            ApiBinding::from_method_arn("arn:aws-cn:execute-api:cn-north-1:123456789012:abc/partner/POST/x"),
            Some(ApiBinding { api_id: "abc".into(), stage: "partner".into() })
        );
        for bad in [
            "",
            "arn:aws:lambda:eu-west-1:123456789012:function:x",
            "arn:aws:execute-api:eu-west-1:123456789012:a1b2c3d4e5",
            "arn:aws:execute-api:eu-west-1:123456789012:/v1/POST/x",
            "arn:aws:execute-api:eu-west-1:123456789012:api//POST/x",
        ] {
            assert_eq!(ApiBinding::from_method_arn(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn reasons_are_distinct_fixed_names() {
        let names: std::collections::BTreeSet<_> = MacError::ALL.iter().map(|e| e.reason()).collect();
        assert_eq!(names.len(), MacError::ALL.len());
    }
}
