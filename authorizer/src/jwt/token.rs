//! Structural parsing of a compact JWS, before any key is touched.
//!
//! Everything here works on attacker-controlled bytes, so it only splits, base64url-decodes and JSON-parses (refusing
//! duplicate member names), with no indexing that could panic. The result is *unverified*: it picks the issuer
//! configuration and the key, and its claims are only read as an identity after the signature over exactly the
//! `header.payload` bytes they were decoded from has verified. The token is parsed once: the signature check and the
//! claim checks use these parts instead of decoding the token again.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::JwtError;

/// The parts of a token that the verifier needs, split and decoded once. It holds the whole usable token, so its
/// `Debug` (written out below) prints only the header's `alg` and `kid`.
pub(crate) struct UnverifiedToken<'a> {
    /// The header's `alg`, exactly as sent.
    pub alg: String,
    /// The header's `kid`, if any.
    pub kid: Option<String>,
    /// The decoded payload object; only its `iss` is read before verification.
    pub claims: Map<String, Value>,
    /// `header.payload` exactly as sent: the JWS signing input the signature covers.
    pub signing_input: &'a str,
    /// The signature segment, base64url (known to decode).
    pub signature: &'a str,
    /// The decoded header when it has members other than `alg`, `kid` and a string (or null) `typ`: those must
    /// still have the form JOSE registers for them (see [`UnverifiedToken::header_members_well_formed`]).
    other_header_members: Option<Vec<u8>>,
}

impl std::fmt::Debug for UnverifiedToken<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnverifiedToken").field("alg", &self.alg).field("kid", &self.kid).finish_non_exhaustive()
    }
}

impl UnverifiedToken<'_> {
    /// Whether every registered JOSE header member has its registered form (`cty`, `jku`, `x5u`, `x5t` … strings,
    /// `x5c` an array of strings, `jwk` a JWK), as jsonwebtoken's `Header` reads them. A token whose header other
    /// JOSE readers refuse is refused here too, as `Malformed`, even though none of those members is ever used.
    /// Only headers with such members are decoded again; `{alg, kid, typ}` headers need no second look.
    pub(crate) fn header_members_well_formed(&self) -> bool {
        self.other_header_members.as_deref().is_none_or(|h| serde_json::from_slice::<jsonwebtoken::Header>(h).is_ok())
    }
}

/// Whether the registered claims that JOSE readers decode by type have a form they can read: `exp` and `nbf` no
/// non-empty array or object, `sub` no array or object at all (jsonwebtoken's reader of the registered claims
/// fails on those as a whole instead of on the one claim). Such a token is refused as `Malformed` once its
/// signature verified, before the claim checks; every other wrong type is left to them, which name the claim.
pub(crate) fn registered_claims_readable(claims: &Map<String, Value>) -> bool {
    let nested = |name: &str| match claims.get(name) {
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
        _ => false,
    };
    !nested("exp") && !nested("nbf") && !matches!(claims.get("sub"), Some(Value::Array(_) | Value::Object(_)))
}

/// True for the characters of the unpadded base64url alphabet.
fn is_b64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// A JSON value in which no object names a member twice, at any depth.
///
/// RFC 7515 §4 and RFC 7519 §4 let a recipient either reject a header or claims set with duplicate member names or
/// take the last one. `serde_json::Value` silently keeps the last, while other parsers (the partner's, a WAF's, a
/// log pipeline's) may keep the first: two readers of one token could then disagree about its `alg`, `kid`, `iss` or
/// `sub`. Refusing duplicates outright makes every reader see the same token. Member names are compared after JSON
/// unescaping, so `"\u0069ss"` duplicates `"iss"`.
struct UniqueMembers(Value);

impl<'de> Deserialize<'de> for UniqueMembers {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UniqueVisitor).map(UniqueMembers)
    }
}

struct UniqueVisitor;

impl<'de> Visitor<'de> for UniqueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value without duplicate member names")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        // serde_json never yields a non-finite number from text; refuse rather than invent one if it did.
        serde_json::Number::from_f64(v).map(Value::Number).ok_or_else(|| E::custom("non-finite number"))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(UniqueMembers(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(name) = map.next_key::<String>()? {
            if out.contains_key(&name) {
                // The text names no member: it may be a claim an operator's log should not see.
                return Err(de::Error::custom("duplicate member name"));
            }
            let UniqueMembers(v) = map.next_value()?;
            out.insert(name, v);
        }
        Ok(Value::Object(out))
    }
}

/// Decodes one base64url segment into a JSON object whose member names are unique at every depth, with the
/// decoded bytes.
fn decode_object(segment: &str) -> Result<(Map<String, Value>, Vec<u8>), JwtError> {
    let bytes = URL_SAFE_NO_PAD.decode(segment).map_err(|_| JwtError::Malformed)?;
    match serde_json::from_slice::<UniqueMembers>(&bytes) {
        Ok(UniqueMembers(Value::Object(m))) => Ok((m, bytes)),
        _ => Err(JwtError::Malformed),
    }
}

/// Splits and decodes a compact JWS. The caller has already applied the size cap.
pub(crate) fn parse(token: &str) -> Result<UnverifiedToken<'_>, JwtError> {
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
    let header_len = header.len();
    let (header, header_bytes) = decode_object(header)?;
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
    let (claims, _) = decode_object(payload)?;
    let plain = header.iter().all(|(name, v)| match name.as_str() {
        "alg" | "kid" => true,
        "typ" => matches!(v, Value::String(_) | Value::Null),
        _ => false,
    });
    let signing_input = token.get(..header_len + 1 + payload.len()).ok_or(JwtError::Malformed)?;
    Ok(UnverifiedToken {
        alg,
        kid,
        claims,
        signing_input,
        signature,
        other_header_members: (!plain).then_some(header_bytes),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn enc(v: &str) -> String {
        URL_SAFE_NO_PAD.encode(v)
    }

    /// The parsed token holds the signing input and signature, a usable token: its `Debug` shows neither.
    #[test]
    fn debug_shows_alg_and_kid_only() {
        let token =
            format!("{}.{}.{}", enc(r#"{"alg":"RS256","kid":"k1"}"#), enc(r#"{"iss":"https://i"}"#), enc("sig"));
        let parsed = parse(&token).unwrap();
        let dbg = format!("{parsed:?}");
        assert!(dbg.contains("RS256") && dbg.contains("k1"), "{dbg}");
        for part in token.split('.') {
            assert!(!dbg.contains(part), "{dbg}");
        }
        assert!(!dbg.contains("https://i"), "{dbg}");
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

    #[test]
    fn duplicate_member_names_are_refused_at_any_depth() {
        let p = enc(r#"{"iss":"x"}"#);
        let h = enc(r#"{"alg":"RS256"}"#);
        for header in [
            r#"{"alg":"RS256","alg":"RS256"}"#,
            r#"{"alg":"none","alg":"RS256"}"#,
            r#"{"alg":"RS256","kid":"a","kid":"b"}"#,
            r#"{"alg":"RS256","\u0061lg":"ES256"}"#,
            r#"{"alg":"RS256","x":{"y":1,"y":2}}"#,
        ] {
            assert_eq!(parse(&format!("{}.{p}.c2ln", enc(header))).unwrap_err(), JwtError::Malformed, "{header}");
        }
        for payload in
            [r#"{"iss":"x","iss":"y"}"#, r#"{"iss":"x","\u0069ss":"y"}"#, r#"{"iss":"x","a":[{"b":1,"b":1}]}"#]
        {
            assert_eq!(parse(&format!("{h}.{}.c2ln", enc(payload))).unwrap_err(), JwtError::Malformed, "{payload}");
        }
        // Same names in different objects are not duplicates; values keep their types.
        let t = format!("{h}.{}.c2ln", enc(r#"{"iss":"x","a":{"iss":1.5,"n":null,"t":[true,-1]}}"#));
        let claims = parse(&t).unwrap().claims;
        assert_eq!(claims["a"], serde_json::json!({"iss":1.5,"n":null,"t":[true,-1]}));
    }

    #[test]
    fn segments_are_kept_as_sent() {
        let (h, p) = (enc(r#"{"alg":"RS256","kid":"k","typ":"JWT"}"#), enc(r#"{"iss":"x"}"#));
        let t = format!("{h}.{p}.c2ln");
        let parsed = parse(&t).unwrap();
        assert_eq!((parsed.signing_input, parsed.signature), (format!("{h}.{p}").as_str(), "c2ln"));
        assert!(parsed.other_header_members.is_none(), "alg, kid and typ need no second look");
        for header in [r#"{"alg":"RS256","typ":null}"#, r#"{"alg":"RS256"}"#] {
            assert!(parse(&format!("{}.{p}.c2ln", enc(header))).unwrap().other_header_members.is_none(), "{header}");
        }
    }

    /// An HS256 token over these exact header and payload texts, and what jsonwebtoken's own `decode` makes of it:
    /// whether it fails to read the JSON (as opposed to refusing a claim).
    fn jsonwebtoken_cannot_read(header: &str, payload: &str) -> (String, bool) {
        use jsonwebtoken::{crypto, errors::ErrorKind, Algorithm, DecodingKey, EncodingKey, Validation};
        let input = format!("{}.{}", enc(header), enc(payload));
        let sig = crypto::sign(input.as_bytes(), &EncodingKey::from_secret(b"k"), Algorithm::HS256).unwrap();
        let token = format!("{input}.{sig}");
        let mut v = Validation::new(Algorithm::HS256);
        v.required_spec_claims.clear();
        (v.validate_exp, v.validate_aud) = (false, false);
        let got = jsonwebtoken::decode::<Map<String, Value>>(&token, &DecodingKey::from_secret(b"k"), &v);
        let json_error = matches!(got.as_ref().map_err(|e| e.kind()), Err(ErrorKind::Json(_)));
        (token, json_error)
    }

    fn json_values() -> Vec<Value> {
        use serde_json::json;
        vec![
            json!(null),
            json!(true),
            json!(1),
            json!(-1),
            json!(1.5),
            json!("s"),
            json!([]),
            json!({}),
            json!([1]),
            json!(["s"]),
            json!({"a": 1}),
            json!([[]]),
            json!({"kty": "RSA", "n": "AQAB", "e": "AQAB"}),
            json!({"kty": "EC", "crv": "P-256", "x": "AQAB", "y": "AQAB"}),
            json!({"kty": "oct", "k": "c2VjcmV0"}),
        ]
    }

    fn check_header_member(name: &str, v: &Value) {
        let mut h = Map::new();
        h.insert("alg".into(), Value::from("HS256"));
        h.insert(name.into(), v.clone());
        let header = Value::Object(h).to_string();
        let (token, json_error) = jsonwebtoken_cannot_read(&header, r#"{"iss":"x"}"#);
        let parsed = parse(&token).unwrap();
        assert_eq!(!parsed.header_members_well_formed(), json_error, "{header}");
    }

    fn check_claim(name: &str, v: &Value) {
        let mut c = Map::new();
        c.insert("iss".into(), Value::from("x"));
        c.insert(name.into(), v.clone());
        let payload = Value::Object(c).to_string();
        let (token, json_error) = jsonwebtoken_cannot_read(r#"{"alg":"HS256"}"#, &payload);
        let parsed = parse(&token).unwrap();
        assert_eq!(!registered_claims_readable(&parsed.claims), json_error, "{payload}");
    }

    const HEADER_MEMBERS: [&str; 13] =
        ["typ", "cty", "jku", "jwk", "x5u", "x5c", "x5t", "x5t#S256", "enc", "zip", "url", "nonce", "x-other"];
    const CLAIMS: [&str; 8] = ["exp", "nbf", "sub", "iss", "aud", "iat", "jti", "client_id"];

    /// The header and claim forms refused as `Malformed` after key selection and after the signature are exactly
    /// those jsonwebtoken's reader of a JWS cannot read, so no token another JOSE reader refuses passes here.
    #[test]
    fn unreadable_forms_are_those_jsonwebtoken_cannot_read() {
        for v in json_values() {
            for name in HEADER_MEMBERS {
                check_header_member(name, &v);
            }
            for name in CLAIMS {
                check_claim(name, &v);
            }
        }
    }

    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            prop::num::f64::NORMAL.prop_map(Value::from),
            "[ -~]{0,8}".prop_map(Value::from),
        ];
        leaf.prop_recursive(2, 8, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
                prop::collection::btree_map("[a-z]{1,4}", inner, 0..3)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn unreadable_forms_match_jsonwebtoken_for_any_value(v in any_json(), h in 0..HEADER_MEMBERS.len(), c in 0..CLAIMS.len()) {
            check_header_member(HEADER_MEMBERS[h], &v);
            check_claim(CLAIMS[c], &v);
        }

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
