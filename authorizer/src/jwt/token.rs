//! Structural parsing of a compact JWS, before any key is touched.
//!
//! Everything here works on attacker-controlled bytes, so it only splits, base64url-decodes and JSON-parses, with
//! no indexing that could panic. The result is *unverified*: it is used to pick the issuer configuration and the
//! key, never as an identity. jsonwebtoken's `dangerous::` decoders are deliberately not used, so that the only
//! claims this crate ever trusts come out of `jsonwebtoken::decode` after the signature check.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{Map, Value};

use super::JwtError;

/// The parts of a token that the verifier needs before the signature check.
#[derive(Debug)]
pub(crate) struct UnverifiedToken {
    /// The header's `alg`, exactly as sent.
    pub alg: String,
    /// The header's `kid`, if any.
    pub kid: Option<String>,
    /// The decoded payload object; only its `iss` is read before verification.
    pub claims: Map<String, Value>,
}

/// True for the characters of the unpadded base64url alphabet.
fn is_b64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// Decodes one base64url segment into a JSON object.
fn decode_object(segment: &str) -> Result<Map<String, Value>, JwtError> {
    let bytes = URL_SAFE_NO_PAD.decode(segment).map_err(|_| JwtError::Malformed)?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(JwtError::Malformed),
    }
}

/// Splits and decodes a compact JWS. The caller has already applied the size cap.
pub(crate) fn parse(token: &str) -> Result<UnverifiedToken, JwtError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed);
    };
    // The header is looked at first so that `alg: none` and `crit` get their own refusal even when the rest is
    // junk (an unsigned token usually has an empty signature segment).
    if !header.bytes().all(is_b64url) {
        return Err(JwtError::Malformed);
    }
    let header = decode_object(header)?;
    let alg = match header.get("alg") {
        Some(Value::String(a)) => a.clone(),
        _ => return Err(JwtError::Malformed),
    };
    // `none` in any spelling is refused outright, before anything else is looked at.
    if alg.trim().eq_ignore_ascii_case("none") {
        return Err(JwtError::AlgNone);
    }
    // RFC 7515 §4.1.11: a recipient must reject a token whose `crit` names an extension it does not process. This
    // verifier processes none, so any `crit` (even an empty or malformed one) is refused.
    if header.contains_key("crit") {
        return Err(JwtError::CritHeader);
    }
    // `jku`, `x5u`, `jwk` and `x5c` are read by nobody: keys come only from the issuer's configured JWKS URL.
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(k)) if !k.is_empty() && k.len() <= 256 => Some(k.clone()),
        Some(_) => return Err(JwtError::Malformed),
    };

    if payload.is_empty() || signature.is_empty() || ![payload, signature].iter().all(|s| s.bytes().all(is_b64url)) {
        return Err(JwtError::Malformed);
    }
    // The signature must at least be valid base64url; its bytes are checked by the crypto later.
    if URL_SAFE_NO_PAD.decode(signature).is_err() {
        return Err(JwtError::Malformed);
    }
    let claims = decode_object(payload)?;
    Ok(UnverifiedToken { alg, kid, claims })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn enc(v: &str) -> String {
        URL_SAFE_NO_PAD.encode(v)
    }

    #[test]
    fn structure_is_checked() {
        let h = enc(r#"{"alg":"RS256","kid":"k"}"#);
        let p = enc(r#"{"iss":"x"}"#);
        assert!(parse(&format!("{h}.{p}.c2ln")).is_ok());
        for bad in [
            String::new(),
            "..".into(),
            format!("{h}.{p}"),
            format!("{h}.{p}."),
            format!("{h}.{p}.c2ln.c2ln"),
            format!("{h}.{p}.c2ln="),
            format!("{h} .{p}.c2ln"),
            format!("{h}.{}.c2ln", enc("[1]")),
            format!("{}.{p}.c2ln", enc(r#"{"alg":1}"#)),
            format!("{}.{p}.c2ln", enc(r#"{"alg":"RS256","kid":7}"#)),
        ] {
            assert_eq!(parse(&bad).unwrap_err(), JwtError::Malformed, "{bad}");
        }
    }

    #[test]
    fn none_and_crit_are_refused_first() {
        let p = enc(r#"{"iss":"x"}"#);
        for alg in ["none", "None", "NONE", "nOnE", " none"] {
            let h = enc(&format!(r#"{{"alg":"{alg}"}}"#));
            assert_eq!(parse(&format!("{h}.{p}.c2ln")).unwrap_err(), JwtError::AlgNone);
            assert_eq!(parse(&format!("{h}.{p}.")).unwrap_err(), JwtError::AlgNone);
        }
        let h = enc(r#"{"alg":"RS256","crit":[]}"#);
        assert_eq!(parse(&format!("{h}.{p}.c2ln")).unwrap_err(), JwtError::CritHeader);
    }

    proptest! {
        #[test]
        fn never_panics_on_strings(s in "\\PC{0,400}") {
            let _ = parse(&s);
        }

        #[test]
        fn never_panics_on_dotted_base64(a in "[A-Za-z0-9_-]{0,60}", b in "[A-Za-z0-9_-]{0,60}", c in "[A-Za-z0-9_=.-]{0,60}") {
            let _ = parse(&format!("{a}.{b}.{c}"));
        }
    }
}
