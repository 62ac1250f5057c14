//! Caller claims: the caller context the broker hands to Cognito as client metadata, for the pre-token-generation
//! trigger to write into the access token.
//!
//! Cognito passes a token request's client metadata (`ClientMetadata` of `GetClientToken`, `aws_client_metadata`
//! of `/oauth2/token`) to the trigger unchanged and unchecked. Anyone holding an app client's secret can call Cognito
//! directly with metadata of their own making, so the trigger must not believe metadata merely because it is
//! there: the broker adds an HMAC-SHA256 over every field, the Cognito app client id it asks for, and an expiry,
//! made with the context key set (the same SSM key set the authorizer signs contexts with, under a different label,
//! so a MAC of one kind can never pass as the other). The trigger recomputes it and fails the token on any mismatch.
//!
//! Metadata keys: the four [caller-context keys](super::KEYS) with the same meaning and values as in the context,
//! [`META_CERT_THUMBPRINT`] only for a certificate-bound token, and the three MAC keys [`META_MAC`],
//! [`META_MAC_KEY_ID`], [`META_MAC_EXPIRES`]. Nothing else: a metadata map with any other key is refused, so a
//! caller-supplied key can never reach a token.
//!
//! Canonical encoding (version 1): the ASCII label `tb-caller-claims-v1`, then for each of key id, expiry (decimal
//! seconds since the epoch), app client id, `callerId`, `authMethod`, `credentialFingerprint`, `policyVersion` and
//! the certificate thumbprint (empty when unbound), the value's length as two big-endian bytes and its bytes.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use super::keys::{ContextKey, KeySet, MAX_KEY_ID_LEN};
use super::{AuthMethod, CallerContext, KEYS};

/// Metadata key of the client certificate's RFC 8705 thumbprint (`x5t#S256`), present only when the token is to be
/// bound to the certificate.
pub const META_CERT_THUMBPRINT: &str = "certThumbprint";
/// Metadata key of the MAC (base64url of the 32-byte HMAC-SHA256, no padding).
pub const META_MAC: &str = "claimsMac";
/// Metadata key of the id of the key the MAC was made with.
pub const META_MAC_KEY_ID: &str = "claimsMacKeyId";
/// Metadata key of the MAC's expiry, seconds since the Unix epoch.
pub const META_MAC_EXPIRES: &str = "claimsMacExpires";

/// How long signed metadata stays valid. It is consumed within the one Cognito call it is made for; the bound only
/// limits replay by someone who captured it (it is never logged, but Cognito does not treat it as secret).
pub const CLAIMS_TTL: Duration = Duration::from_secs(120);
/// Clock difference between the broker's and the trigger's instances tolerated on the expiry's upper bound.
const CLOCK_SKEW: Duration = Duration::from_secs(60);
/// Length of an RFC 8705 `x5t#S256` value: base64url of 32 bytes, no padding.
pub const THUMBPRINT_LEN: usize = 43;
/// Longest app client id (Cognito's are 26 characters; its API allows 128).
const MAX_CLIENT_ID_LEN: usize = 128;

const LABEL: &[u8] = b"tb-caller-claims-v1";
const MAC_LEN: usize = 32;

type HmacSha256 = Hmac<Sha256>;

/// What the trigger writes into a token: the verified caller context, and the certificate thumbprint when the token
/// is bound to the caller's certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerClaims {
    /// The caller, as the authorizer established it.
    pub context: CallerContext,
    /// The `x5t#S256` thumbprint of the client certificate the token is bound to, if it is.
    pub cert_thumbprint: Option<String>,
}

/// Why metadata was refused. None of them names the MAC, the key or a metadata value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClaimsError {
    /// A required key is absent: a token request that did not come through the broker.
    #[error("the client metadata lacks a caller-claims key")]
    Missing,
    /// The metadata holds a key outside the contract.
    #[error("the client metadata holds a key outside the caller-claims contract")]
    UnexpectedKey,
    /// A key holds a value the broker never writes.
    #[error("the client metadata holds a malformed caller-claims value")]
    Malformed,
    /// The MAC names a key id the trigger does not hold.
    #[error("the caller-claims MAC names an unknown key")]
    UnknownKey,
    /// The MAC has expired, or claims to live longer than the broker ever makes it.
    #[error("the caller-claims MAC has expired")]
    Expired,
    /// The MAC does not match: a changed value, another key, or metadata made for another app client.
    #[error("the caller-claims MAC does not match")]
    Mismatch,
}

impl ClaimsError {
    /// The fixed, low-cardinality name used in logs and metrics.
    pub fn reason(self) -> &'static str {
        match self {
            ClaimsError::Missing => "missing",
            ClaimsError::UnexpectedKey => "unexpected_key",
            ClaimsError::Malformed => "malformed",
            ClaimsError::UnknownKey => "unknown_key",
            ClaimsError::Expired => "expired",
            ClaimsError::Mismatch => "mismatch",
        }
    }
}

/// Whether `s` has the form of an RFC 8705 `x5t#S256` thumbprint: base64url (no padding) of 32 bytes.
pub fn is_thumbprint(s: &str) -> bool {
    s.len() == THUMBPRINT_LEN && URL_SAFE_NO_PAD.decode(s.as_bytes()).is_ok_and(|b| b.len() == 32)
}

fn epoch_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn compute(key: &ContextKey, expires: u64, app_client_id: &str, claims: &CallerClaims) -> HmacSha256 {
    let expires = expires.to_string();
    let c = &claims.context;
    let caller = c.caller_id.to_string();
    let values = [
        key.id(),
        expires.as_str(),
        app_client_id,
        caller.as_str(),
        c.auth_method.as_str(),
        c.credential_fingerprint.as_str(),
        c.policy_version.as_str(),
        claims.cert_thumbprint.as_deref().unwrap_or(""),
    ];
    let mut mac = HmacSha256::new_from_slice(key.secret_bytes()).expect("HMAC takes a key of any length");
    mac.update(LABEL);
    for value in values {
        // Every value is bounded far below 64 KiB where it is accepted; a longer one is cut at the length field's
        // limit, which can only make the MAC fail.
        let len = u16::try_from(value.len()).unwrap_or(u16::MAX);
        mac.update(&len.to_be_bytes());
        mac.update(&value.as_bytes()[..usize::from(len)]);
    }
    mac
}

/// The broker's side: the whole client-metadata map for a token request for `app_client_id`, signed with the key
/// set's signing key, valid until `now + ttl` (capped at [`CLAIMS_TTL`]).
pub fn sign(
    claims: &CallerClaims,
    app_client_id: &str,
    keys: &KeySet,
    now: SystemTime,
    ttl: Duration,
) -> BTreeMap<String, String> {
    let key = keys.signing();
    let expires = epoch_seconds(now) + ttl.min(CLAIMS_TTL).as_secs();
    let tag = URL_SAFE_NO_PAD.encode(compute(key, expires, app_client_id, claims).finalize().into_bytes());
    let mut m: BTreeMap<String, String> = claims
        .context
        .to_map()
        .into_iter()
        .map(|(k, v)| (k, v.as_str().map(str::to_owned).unwrap_or_default()))
        .collect();
    if let Some(t) = &claims.cert_thumbprint {
        m.insert(META_CERT_THUMBPRINT.into(), t.clone());
    }
    m.insert(META_MAC.into(), tag);
    m.insert(META_MAC_KEY_ID.into(), key.id().to_owned());
    m.insert(META_MAC_EXPIRES.into(), expires.to_string());
    m
}

/// The trigger's side: the caller claims of `metadata` if its MAC verifies for `app_client_id` (the client id Cognito
/// names in the trigger event) with one of `keys` at `now`. The MAC is compared in constant time.
pub fn verify(
    metadata: &HashMap<String, String>,
    app_client_id: &str,
    keys: &KeySet,
    now: SystemTime,
) -> Result<CallerClaims, ClaimsError> {
    let allowed =
        |k: &str| KEYS.contains(&k) || [META_CERT_THUMBPRINT, META_MAC, META_MAC_KEY_ID, META_MAC_EXPIRES].contains(&k);
    if metadata.keys().any(|k| !allowed(k)) {
        return Err(ClaimsError::UnexpectedKey);
    }
    let get = |k: &str| metadata.get(k).ok_or(ClaimsError::Missing);
    let (tag, key_id, expires) = (get(META_MAC)?, get(META_MAC_KEY_ID)?, get(META_MAC_EXPIRES)?);
    let context_map: HashMap<String, Value> =
        KEYS.iter().map(|k| get(k).map(|v| ((*k).to_owned(), Value::String(v.clone())))).collect::<Result<_, _>>()?;
    // Every value is a string here, so the context reader takes each as written (it converts only the numbers and
    // booleans API Gateway may make of a context's strings).
    let context = CallerContext::from_map(&context_map).map_err(|_| ClaimsError::Malformed)?;
    let cert_thumbprint = match metadata.get(META_CERT_THUMBPRINT) {
        None => None,
        Some(t) if is_thumbprint(t) && context.auth_method == AuthMethod::Mtls => Some(t.clone()),
        Some(_) => return Err(ClaimsError::Malformed),
    };
    if app_client_id.is_empty() || app_client_id.len() > MAX_CLIENT_ID_LEN {
        return Err(ClaimsError::Malformed);
    }
    if key_id.is_empty() || key_id.len() > MAX_KEY_ID_LEN {
        return Err(ClaimsError::Malformed);
    }
    let tag = URL_SAFE_NO_PAD.decode(tag.as_bytes()).map_err(|_| ClaimsError::Malformed)?;
    if tag.len() != MAC_LEN {
        return Err(ClaimsError::Malformed);
    }
    let expires_at: u64 =
        expires.parse().ok().filter(|v: &u64| v.to_string() == *expires).ok_or(ClaimsError::Malformed)?;
    let key = keys.get(key_id).ok_or(ClaimsError::UnknownKey)?;
    let now_s = epoch_seconds(now);
    if expires_at < now_s || expires_at > now_s + (CLAIMS_TTL + CLOCK_SKEW).as_secs() {
        return Err(ClaimsError::Expired);
    }
    let claims = CallerClaims { context, cert_thumbprint };
    compute(key, expires_at, app_client_id, &claims).verify_slice(&tag).map_err(|_| ClaimsError::Mismatch)?;
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::CallerId;
    use proptest::prelude::*;

    const K1: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY";
    const K2: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA";
    const THUMB: &str = "n4bQgYhMfWWaL-qgxVrQFaO_TxsrC4Is0V1sFbDwCgg";
    const CLIENT: &str = "3n4b5urk1ft4fl3mg5e62d9ado";
    const K1_BYTES: &[u8; 32] = b"0123456789abcdef0123456789abcdef";

    fn keys(signing: &str) -> KeySet {
        KeySet::parse(format!(r#"{{"signing_key_id":"{signing}","keys":{{"k1":"{K1}","k2":"{K2}"}}}}"#).as_bytes())
            .unwrap()
    }
    fn claims(bound: bool) -> CallerClaims {
        CallerClaims {
            context: CallerContext {
                caller_id: CallerId::try_from("order-processing").unwrap(),
                auth_method: AuthMethod::Mtls,
                credential_fingerprint: THUMB.into(),
                policy_version: "0123456789abcdef".into(),
            },
            cert_thumbprint: bound.then(|| THUMB.to_owned()),
        }
    }
    fn at(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(s)
    }
    fn signed(bound: bool) -> HashMap<String, String> {
        sign(&claims(bound), CLIENT, &keys("k1"), at(1_000_000), CLAIMS_TTL).into_iter().collect()
    }

    #[test]
    fn signed_metadata_verifies_until_it_expires_with_either_key() {
        for bound in [false, true] {
            let m = signed(bound);
            assert_eq!(verify(&m, CLIENT, &keys("k1"), at(1_000_000)), Ok(claims(bound)));
            assert_eq!(verify(&m, CLIENT, &keys("k2"), at(1_000_120)), Ok(claims(bound)), "rotation: k1 still held");
            assert_eq!(verify(&m, CLIENT, &keys("k1"), at(1_000_121)), Err(ClaimsError::Expired));
            assert_eq!(m.contains_key(META_CERT_THUMBPRINT), bound);
        }
    }

    #[test]
    fn the_ttl_is_capped_and_a_far_future_expiry_is_refused() {
        let long = sign(&claims(false), CLIENT, &keys("k1"), at(1_000_000), Duration::from_secs(86_400));
        assert_eq!(long[META_MAC_EXPIRES], "1000120");
        let m = signed(false);
        assert_eq!(verify(&m, CLIENT, &keys("k1"), at(1_000_000 - 61)), Err(ClaimsError::Expired));
        assert!(verify(&m, CLIENT, &keys("k1"), at(1_000_000 - 60)).is_ok());
    }

    #[test]
    fn every_value_is_bound() {
        let k = keys("k1");
        let now = at(1_000_000);
        for key in [KEYS.as_slice(), &[META_CERT_THUMBPRINT]].concat() {
            let mut m = signed(true);
            let changed = match key {
                "callerId" => "billing".to_owned(),
                "authMethod" => "jwt".to_owned(),
                "certThumbprint" | "credentialFingerprint" => THUMB.replace('n', "m"),
                _ => "fedcba9876543210".to_owned(),
            };
            m.insert(key.to_owned(), changed);
            let r = verify(&m, CLIENT, &k, now);
            // A JWT caller with a thumbprint is malformed before the MAC is looked at; everything else is a mismatch.
            assert!(matches!(r, Err(ClaimsError::Mismatch | ClaimsError::Malformed)), "{key}: {r:?}");
        }
        assert_eq!(verify(&signed(false), "another-client", &k, now), Err(ClaimsError::Mismatch));
        let mut unbound = signed(true);
        unbound.remove(META_CERT_THUMBPRINT);
        assert_eq!(verify(&unbound, CLIENT, &k, now), Err(ClaimsError::Mismatch), "dropping the binding");
        let mut bound = signed(false);
        bound.insert(META_CERT_THUMBPRINT.into(), THUMB.into());
        assert_eq!(verify(&bound, CLIENT, &k, now), Err(ClaimsError::Mismatch), "adding a binding");
        let mut later = signed(false);
        later.insert(META_MAC_EXPIRES.into(), "1000100".into());
        assert_eq!(verify(&later, CLIENT, &k, now), Err(ClaimsError::Mismatch), "moving the expiry");
    }

    #[test]
    fn missing_extra_and_malformed_keys_are_refused() {
        let k = keys("k1");
        let now = at(1_000_000);
        for key in [KEYS.as_slice(), &[META_MAC, META_MAC_KEY_ID, META_MAC_EXPIRES]].concat() {
            let mut m = signed(false);
            m.remove(key);
            assert_eq!(verify(&m, CLIENT, &k, now), Err(ClaimsError::Missing), "{key}");
        }
        let mut m = signed(false);
        m.insert("cnf".into(), "{}".into());
        assert_eq!(verify(&m, CLIENT, &k, now), Err(ClaimsError::UnexpectedKey));
        assert_eq!(verify(&HashMap::new(), CLIENT, &k, now), Err(ClaimsError::Missing));
        let cases: [(&str, &str); 9] = [
            (META_MAC, "short"),
            (META_MAC, &"A".repeat(44)),
            (META_MAC_EXPIRES, "01000100"),
            (META_MAC_EXPIRES, "+1000100"),
            (META_MAC_KEY_ID, ""),
            (META_CERT_THUMBPRINT, "not-a-thumbprint"),
            ("callerId", "has space"),
            ("authMethod", "MTLS"),
            ("policyVersion", ""),
        ];
        for (key, value) in cases {
            let mut m = signed(false);
            m.insert(key.into(), value.into());
            assert_eq!(verify(&m, CLIENT, &k, now), Err(ClaimsError::Malformed), "{key}={value}");
        }
        let mut m = signed(false);
        m.insert(META_MAC_KEY_ID.into(), "k9".into());
        assert_eq!(verify(&m, CLIENT, &k, now), Err(ClaimsError::UnknownKey));
        assert_eq!(verify(&signed(false), "", &k, now), Err(ClaimsError::Malformed));
    }

    #[test]
    fn a_context_mac_never_passes_as_a_claims_mac() {
        // Same key, same fields: the label keeps the two kinds apart.
        let k = keys("k1");
        let c = claims(false);
        let api = super::super::ApiBinding { api_id: CLIENT.into(), stage: "v1".into() };
        let ctx_mac = super::super::sign(&c.context, &api, &k, at(1_000_000), Duration::from_secs(120));
        let mut m = signed(false);
        m.insert(META_MAC.into(), ctx_mac[0].1.clone());
        assert_eq!(verify(&m, CLIENT, &k, at(1_000_000)), Err(ClaimsError::Mismatch));
    }

    #[test]
    fn client_and_key_ids_are_bounded_at_their_limits() {
        let now = at(1_000_000);
        let long_client = "c".repeat(MAX_CLIENT_ID_LEN);
        let m: HashMap<_, _> = sign(&claims(false), &long_client, &keys("k1"), now, CLAIMS_TTL).into_iter().collect();
        assert_eq!(verify(&m, &long_client, &keys("k1"), now), Ok(claims(false)), "the longest client id");
        let longer = "c".repeat(MAX_CLIENT_ID_LEN + 1);
        assert_eq!(verify(&m, &longer, &keys("k1"), now), Err(ClaimsError::Malformed));

        let long_id = "k".repeat(MAX_KEY_ID_LEN);
        let set = KeySet::single(&long_id, K1_BYTES.to_vec()).unwrap();
        let m: HashMap<_, _> = sign(&claims(false), CLIENT, &set, now, CLAIMS_TTL).into_iter().collect();
        assert_eq!(verify(&m, CLIENT, &set, now), Ok(claims(false)), "the longest key id");
        let mut too_long = m.clone();
        too_long.insert(META_MAC_KEY_ID.into(), "k".repeat(MAX_KEY_ID_LEN + 1));
        assert_eq!(verify(&too_long, CLIENT, &set, now), Err(ClaimsError::Malformed));
    }

    #[test]
    fn reasons_are_distinct_metric_names() {
        let all = [
            ClaimsError::Missing,
            ClaimsError::UnexpectedKey,
            ClaimsError::Malformed,
            ClaimsError::UnknownKey,
            ClaimsError::Expired,
            ClaimsError::Mismatch,
        ];
        let names: std::collections::BTreeSet<&str> = all.iter().map(|e| e.reason()).collect();
        assert_eq!(names.len(), all.len());
        assert!(names.iter().all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')));
        assert!(names.contains("mismatch") && names.contains("unexpected_key"));
    }

    #[test]
    fn thumbprint_form() {
        assert!(is_thumbprint(THUMB));
        assert!(!is_thumbprint(&THUMB[..42]));
        assert!(!is_thumbprint(&format!("{THUMB}=")));
        assert!(!is_thumbprint(&THUMB.replace('-', "+")));
    }

    proptest! {
        /// Whatever metadata arrives, verification answers without panicking, and never accepts a map the broker
        /// did not sign.
        #[test]
        fn arbitrary_metadata_never_verifies(
            entries in proptest::collection::hash_map(
                prop_oneof![
                    Just("callerId".to_owned()), Just("authMethod".to_owned()),
                    Just("credentialFingerprint".to_owned()), Just("policyVersion".to_owned()),
                    Just("certThumbprint".to_owned()), Just("claimsMac".to_owned()),
                    Just("claimsMacKeyId".to_owned()), Just("claimsMacExpires".to_owned()), "\\PC{0,12}"],
                "\\PC{0,60}", 0..10),
            client in "\\PC{0,40}",
        ) {
            prop_assert!(verify(&entries, &client, &keys("k1"), at(1_000_000)).is_err());
        }
    }
}
