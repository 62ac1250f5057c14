//! A partner's JWKS parsed once into verification keys, and the rules for which key may check which token.
//!
//! Keys are turned into jsonwebtoken `DecodingKey`s when the document is fetched, not per request. Only public
//! signature keys of the asymmetric families are built; `oct` (HMAC) keys and private parameters are never turned
//! into keys at all, so an HS256 token can never meet a key it could be checked against.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tb_shared::policy::JwtAlgorithm;

/// Smallest RSA modulus accepted from a partner's JWKS (RFC 7518 §3.3 requires 2048 bits).
pub(crate) const MIN_RSA_BITS: usize = 2048;
/// Largest RSA modulus accepted; bigger keys only cost verification time.
pub(crate) const MAX_RSA_BITS: usize = 8192;
/// Most keys kept from one JWKS document: real ones hold two or three (current and next).
pub(crate) const MAX_KEYS: usize = 32;

/// The key type and curve of a usable key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyType {
    Rsa,
    P256,
    P384,
    Ed25519,
}

/// One entry of the JWKS. An entry that cannot be used for verification is kept (with `key: None`) so that a
/// token naming its `kid` is refused as "unusable key" instead of triggering a refetch for an "unknown" one.
#[derive(Debug, Clone)]
pub(crate) struct JwksEntry {
    pub kid: Option<String>,
    pub key: Option<UsableKey>,
}

/// A public key that passed every structural check, with the constraints its JWK declared.
#[derive(Clone)]
pub(crate) struct UsableKey {
    pub kty: KeyType,
    /// The JWK's `alg`, when it named one.
    pub alg: Option<String>,
    pub decoding: DecodingKey,
}

impl std::fmt::Debug for UsableKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsableKey").field("kty", &self.kty).field("alg", &self.alg).finish_non_exhaustive()
    }
}

impl UsableKey {
    /// Whether this key may verify a token with algorithm `alg`: the key type (and curve) must be the one the
    /// algorithm is defined for, and a JWK that names an `alg` may only be used with exactly that one.
    pub(crate) fn fits(&self, alg: JwtAlgorithm) -> bool {
        let kty_ok = match alg {
            JwtAlgorithm::RS256
            | JwtAlgorithm::RS384
            | JwtAlgorithm::RS512
            | JwtAlgorithm::PS256
            | JwtAlgorithm::PS384
            | JwtAlgorithm::PS512 => self.kty == KeyType::Rsa,
            JwtAlgorithm::ES256 => self.kty == KeyType::P256,
            JwtAlgorithm::ES384 => self.kty == KeyType::P384,
            JwtAlgorithm::EdDSA => self.kty == KeyType::Ed25519,
        };
        kty_ok && self.alg.as_deref().is_none_or(|a| a == alg.name())
    }
}

/// The parsed key set of one issuer.
#[derive(Debug, Clone, Default)]
pub(crate) struct KeySet {
    pub entries: Vec<JwksEntry>,
    /// SHA-256 over the entries' JSON, independent of their order in the document: two fetches with the same
    /// fingerprint hold the same keys, so a refresh that returns them again need not drop cached decisions.
    pub fingerprint: [u8; 32],
}

/// What key selection found for a token.
#[derive(Debug)]
pub(crate) enum Selection<'a> {
    /// The keys to try, in order (usually one).
    Keys(Vec<&'a UsableKey>),
    /// No entry carries the token's `kid`: the issuer may have rotated; a refetch may help.
    UnknownKid,
    /// Entries with the token's `kid` exist but none may verify this algorithm (wrong `kty`, curve, `alg`,
    /// `use` or `key_ops`). A refetch would not change that.
    Unusable,
    /// No `kid`, and no usable key for the algorithm: a refetch may help.
    NoKey,
    /// No `kid`, and several keys could verify it: refused rather than tried in turn (see `JwtVerifier`).
    Ambiguous,
}

impl KeySet {
    /// Picks the keys that may verify a token with `alg` and `kid`.
    ///
    /// Without a `kid` a token is accepted only if exactly one key of the set fits its algorithm: trying several
    /// keys would multiply the work an anonymous request can cause and blur which key a partner actually uses.
    pub(crate) fn select(&self, alg: JwtAlgorithm, kid: Option<&str>) -> Selection<'_> {
        match kid {
            Some(kid) => {
                let mut named = self.entries.iter().filter(|e| e.kid.as_deref() == Some(kid)).peekable();
                if named.peek().is_none() {
                    return Selection::UnknownKid;
                }
                let keys: Vec<&UsableKey> = named.filter_map(|e| e.key.as_ref()).filter(|k| k.fits(alg)).collect();
                if keys.is_empty() {
                    Selection::Unusable
                } else {
                    Selection::Keys(keys)
                }
            }
            None => {
                let keys: Vec<&UsableKey> =
                    self.entries.iter().filter_map(|e| e.key.as_ref()).filter(|k| k.fits(alg)).collect();
                match keys.len() {
                    0 => Selection::NoKey,
                    1 => Selection::Keys(keys),
                    _ => Selection::Ambiguous,
                }
            }
        }
    }

    /// Number of entries that can verify something.
    pub(crate) fn usable(&self) -> usize {
        self.entries.iter().filter(|e| e.key.is_some()).count()
    }
}

/// Why a JWKS document was refused as a whole (its previous keys stay in use).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum JwksError {
    #[error("JWKS is not a JSON object with a `keys` array")]
    NotAJwks,
}

#[derive(Deserialize)]
struct RawJwk {
    kty: Option<String>,
    kid: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    alg: Option<String>,
    key_ops: Option<Vec<String>>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
    d: Option<serde_json::Value>,
}

fn b64(s: Option<&String>) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s?).ok()
}

fn strip_leading_zeros(b: &[u8]) -> &[u8] {
    let first = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    b.get(first..).unwrap_or_default()
}

/// Builds the key of one JWK, or `None` when it must never be used for verification.
fn usable_key(j: &RawJwk) -> Option<UsableKey> {
    // `use`, when present, must be "sig"; `key_ops`, when present, must allow "verify".
    if j.use_.as_deref().is_some_and(|u| u != "sig") {
        return None;
    }
    if j.key_ops.as_ref().is_some_and(|ops| !ops.iter().any(|o| o == "verify")) {
        return None;
    }
    // A JWK that carries private material was published by mistake; do not rely on a leaked key.
    if j.d.is_some() {
        return None;
    }
    // A JWK `alg` must be an asymmetric algorithm we know; anything else (HS256, none, typos) makes it unusable.
    if let Some(a) = &j.alg {
        JwtAlgorithm::from_name(a)?;
    }
    match j.kty.as_deref()? {
        "RSA" => {
            let n = b64(j.n.as_ref())?;
            let e = b64(j.e.as_ref())?;
            let n_stripped = strip_leading_zeros(&n);
            let bits = n_stripped.len() * 8;
            if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) || e.is_empty() || e.len() > 8 {
                return None;
            }
            Some(UsableKey {
                kty: KeyType::Rsa,
                alg: j.alg.clone(),
                decoding: DecodingKey::from_rsa_raw_components(n_stripped, strip_leading_zeros(&e)),
            })
        }
        "EC" => {
            let (kty, len) = match j.crv.as_deref()? {
                "P-256" => (KeyType::P256, 32),
                "P-384" => (KeyType::P384, 48),
                _ => return None,
            };
            let x = b64(j.x.as_ref())?;
            let y = b64(j.y.as_ref())?;
            if x.len() != len || y.len() != len {
                return None;
            }
            let mut point = Vec::with_capacity(1 + 2 * len);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            Some(UsableKey { kty, alg: j.alg.clone(), decoding: DecodingKey::from_ec_der(&point) })
        }
        "OKP" => {
            if j.crv.as_deref()? != "Ed25519" {
                return None;
            }
            let x = b64(j.x.as_ref())?;
            if x.len() != 32 {
                return None;
            }
            Some(UsableKey { kty: KeyType::Ed25519, alg: j.alg.clone(), decoding: DecodingKey::from_ed_der(&x) })
        }
        // "oct" (HMAC secrets) and anything unknown: never a verification key here.
        _ => None,
    }
}

/// Parses a JWKS document. Entries that cannot be used are kept by `kid` only; the document as a whole must be a
/// JSON object with a `keys` array.
pub(crate) fn parse_jwks(doc: &[u8]) -> Result<KeySet, JwksError> {
    let v: serde_json::Value = serde_json::from_slice(doc).map_err(|_| JwksError::NotAJwks)?;
    let keys = v.get("keys").and_then(|k| k.as_array()).ok_or(JwksError::NotAJwks)?;
    let mut entries = Vec::new();
    let mut texts: Vec<String> = keys.iter().take(MAX_KEYS).map(|k| k.to_string()).collect();
    texts.sort_unstable();
    let mut digest = Sha256::new();
    for t in &texts {
        // Length-prefixed, so no two different lists hash the same input.
        digest.update((t.len() as u64).to_be_bytes());
        digest.update(t.as_bytes());
    }
    for k in keys.iter().take(MAX_KEYS) {
        let Ok(raw) = serde_json::from_value::<RawJwk>(k.clone()) else {
            // Not even the common fields parse: remember the kid if there is a string one.
            let kid = k.get("kid").and_then(|v| v.as_str()).map(str::to_owned);
            entries.push(JwksEntry { kid, key: None });
            continue;
        };
        entries.push(JwksEntry { key: usable_key(&raw), kid: raw.kid });
    }
    Ok(KeySet { entries, fingerprint: digest.finalize().into() })
}

/// The jsonwebtoken algorithm for a policy algorithm.
pub(crate) fn jwt_alg(a: JwtAlgorithm) -> Algorithm {
    match a {
        JwtAlgorithm::RS256 => Algorithm::RS256,
        JwtAlgorithm::RS384 => Algorithm::RS384,
        JwtAlgorithm::RS512 => Algorithm::RS512,
        JwtAlgorithm::PS256 => Algorithm::PS256,
        JwtAlgorithm::PS384 => Algorithm::PS384,
        JwtAlgorithm::PS512 => Algorithm::PS512,
        JwtAlgorithm::ES256 => Algorithm::ES256,
        JwtAlgorithm::ES384 => Algorithm::ES384,
        JwtAlgorithm::EdDSA => Algorithm::EdDSA,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rsa_jwk(extra: &str) -> String {
        let n = URL_SAFE_NO_PAD.encode([0xC5u8; 256]);
        format!(r#"{{"kty":"RSA","kid":"r","n":"{n}","e":"AQAB"{extra}}}"#)
    }

    fn set(keys: &[String]) -> KeySet {
        parse_jwks(format!(r#"{{"keys":[{}]}}"#, keys.join(",")).as_bytes()).unwrap()
    }

    #[test]
    fn rsa_key_rules() {
        let s = set(&[rsa_jwk("")]);
        assert!(matches!(s.select(JwtAlgorithm::RS256, Some("r")), Selection::Keys(k) if k.len() == 1));
        assert!(matches!(s.select(JwtAlgorithm::PS256, Some("r")), Selection::Keys(_)));
        assert!(matches!(s.select(JwtAlgorithm::ES256, Some("r")), Selection::Unusable));
        assert!(matches!(s.select(JwtAlgorithm::RS256, Some("other")), Selection::UnknownKid));
        assert!(matches!(s.select(JwtAlgorithm::RS256, None), Selection::Keys(_)));
        assert!(matches!(s.select(JwtAlgorithm::ES256, None), Selection::NoKey));

        for extra in
            [r#","use":"enc""#, r#","alg":"RS512""#, r#","alg":"HS256""#, r#","key_ops":["encrypt"]"#, r#","d":"AAAA""#]
        {
            let s = set(&[rsa_jwk(extra)]);
            assert!(matches!(s.select(JwtAlgorithm::RS256, Some("r")), Selection::Unusable), "{extra}");
        }
        let s = set(&[rsa_jwk(r#","use":"sig","alg":"RS256","key_ops":["verify"]"#)]);
        assert!(matches!(s.select(JwtAlgorithm::RS256, Some("r")), Selection::Keys(_)));
    }

    #[test]
    fn small_rsa_and_oct_keys_are_never_usable() {
        let n = URL_SAFE_NO_PAD.encode([0xC5u8; 128]);
        let small = format!(r#"{{"kty":"RSA","kid":"s","n":"{n}","e":"AQAB"}}"#);
        let oct = r#"{"kty":"oct","kid":"o","k":"c2VjcmV0"}"#.to_owned();
        let s = set(&[small, oct, r#"{"kid":"w","kty":5}"#.to_owned()]);
        assert_eq!(s.usable(), 0);
        assert!(matches!(s.select(JwtAlgorithm::RS256, Some("s")), Selection::Unusable));
        assert!(matches!(s.select(JwtAlgorithm::RS256, Some("o")), Selection::Unusable));
        assert!(matches!(s.select(JwtAlgorithm::RS256, Some("w")), Selection::Unusable));
    }

    #[test]
    fn no_kid_needs_exactly_one_fitting_key() {
        let mut a = rsa_jwk("");
        let b = a.replace(r#""kid":"r""#, r#""kid":"r2""#);
        assert!(matches!(set(&[a.clone(), b]).select(JwtAlgorithm::RS256, None), Selection::Ambiguous));
        // An `enc` key next to the signing key does not make it ambiguous.
        let enc = a.replace(r#""kid":"r""#, r#""kid":"e","use":"enc""#);
        a.push(' ');
        assert!(matches!(set(&[a, enc]).select(JwtAlgorithm::RS256, None), Selection::Keys(k) if k.len() == 1));
    }

    #[test]
    fn fingerprint_follows_the_keys_not_their_order() {
        let a = rsa_jwk("");
        let b = a.replace(r#""kid":"r""#, r#""kid":"r2""#);
        let ab = set(&[a.clone(), b.clone()]).fingerprint;
        assert_eq!(ab, set(&[b.clone(), a.clone()]).fingerprint);
        let only_a = set(std::slice::from_ref(&a)).fingerprint;
        assert_ne!(ab, only_a);
        assert_ne!(only_a, set(&[b]).fingerprint);
    }

    #[test]
    fn documents_that_are_not_jwks_are_refused() {
        for doc in ["", "[]", "{}", r#"{"keys":{}}"#, "null"] {
            assert_eq!(parse_jwks(doc.as_bytes()).unwrap_err(), JwksError::NotAJwks, "{doc}");
        }
        assert_eq!(parse_jwks(br#"{"keys":[]}"#).unwrap().entries.len(), 0);
    }
}
