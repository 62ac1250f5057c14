//! Client authentication and request grammar for the token endpoint. NOT FOR PRODUCTION.
//!
//! Why a hand-written parser: the stand-in must reject exactly what Cognito rejects (repeated parameters, two
//! authentication methods at once, malformed Basic credentials) rather than what a framework extractor happens to
//! accept, and it must never panic on what a caller sends.

use std::collections::HashMap;

use base64::Engine as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// SHA-256 of a secret. Comparing digests keeps the comparison fixed-length, so neither the secret's length nor
/// the position of the first differing byte shows in timing.
pub(super) fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Constant-time check of a presented secret against a stored digest.
pub(super) fn secret_matches(presented: &str, stored: &[u8; 32]) -> bool {
    bool::from(digest(presented).ct_eq(stored))
}

/// The body's parameters, each at most once.
#[derive(Default)]
pub(super) struct TokenForm {
    pub grant_type: Option<String>,
    pub scope: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    /// `aws_client_metadata`: the client metadata Cognito hands to the pre-token-generation trigger.
    pub client_metadata: Option<HashMap<String, String>>,
}

/// Why a body could not be read as a token request.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum FormError {
    /// A parameter appeared more than once (RFC 6749 §3.2: "Request and response parameters MUST NOT be included
    /// more than once").
    Repeated,
    /// `aws_client_metadata` is not a JSON object of string values.
    BadMetadata,
}

/// Parses an `application/x-www-form-urlencoded` body. Unknown parameters are ignored, as OAuth servers do.
pub(super) fn parse_form(body: &[u8]) -> Result<TokenForm, FormError> {
    let mut form = TokenForm::default();
    for (k, v) in form_urlencoded::parse(body) {
        if k == "aws_client_metadata" {
            let metadata = parse_client_metadata(&v).ok_or(FormError::BadMetadata)?;
            if form.client_metadata.replace(metadata).is_some() {
                return Err(FormError::Repeated);
            }
            continue;
        }
        let slot = match k.as_ref() {
            "grant_type" => &mut form.grant_type,
            "scope" => &mut form.scope,
            "client_id" => &mut form.client_id,
            "client_secret" => &mut form.client_secret,
            _ => continue,
        };
        if slot.replace(v.into_owned()).is_some() {
            return Err(FormError::Repeated);
        }
    }
    Ok(form)
}

/// Reads the (already form-decoded) value of `aws_client_metadata`: "the client metadata object URL-encoded to
/// string" (Developer Guide, pre token generation trigger), a JSON object whose values are strings, like the API's
/// `ClientMetadata` map. `None` when it is anything else, or names a key twice (which a map cannot hold, so which
/// value the trigger would see is undefined).
fn parse_client_metadata(value: &str) -> Option<HashMap<String, String>> {
    use serde::de::{Deserializer as _, MapAccess, Visitor};

    struct StringMap;
    impl<'de> Visitor<'de> for StringMap {
        type Value = Option<HashMap<String, String>>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON object of string values")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = HashMap::new();
            while let Some((k, v)) = map.next_entry::<String, String>()? {
                if out.insert(k, v).is_some() {
                    return Ok(None);
                }
            }
            Ok(Some(out))
        }
    }
    let mut de = serde_json::Deserializer::from_str(value);
    let parsed = de.deserialize_map(StringMap).ok()??;
    de.end().ok()?;
    Some(parsed)
}

/// Client id and secret from an `Authorization: Basic` value. Per RFC 6749 §2.3.1 both halves are
/// form-urlencoded before they are joined with `:` and base64-encoded, so they are decoded here.
pub(super) struct BasicCredentials {
    pub client_id: String,
    pub client_secret: String,
}

impl std::fmt::Debug for BasicCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicCredentials")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .finish()
    }
}

/// Parses a Basic authorization value; `None` when it is not Basic or is malformed.
pub(super) fn parse_basic(value: &[u8]) -> Option<BasicCredentials> {
    let value = std::str::from_utf8(value).ok()?;
    let (scheme, rest) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(rest.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let client_id = form_decode(id)?;
    if client_id.is_empty() {
        return None;
    }
    Some(BasicCredentials { client_id, client_secret: form_decode(secret)? })
}

/// Decodes one form-urlencoded component (`+` is a space, `%XX` a byte); `None` on a bad escape or non-UTF-8.
fn form_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Splits a `scope` parameter into scope tokens (RFC 6749 §3.3: space-delimited, each `1*( %x21 / %x23-5B /
/// %x5D-7E )`), dropping duplicates and keeping the caller's order. `None` when a token has a forbidden character.
pub(super) fn parse_scope(scope: &str) -> Option<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for token in scope.split(' ').filter(|t| !t.is_empty()) {
        let valid = token.bytes().all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b));
        if !valid {
            return None;
        }
        if !out.iter().any(|s| s == token) {
            out.push(token.to_owned());
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(raw: &str) -> String {
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(raw))
    }

    #[test]
    fn basic_decodes_form_urlencoded_halves() {
        let c = parse_basic(basic("my%3Aclient:s%2Bcr+t%25").as_bytes()).unwrap();
        assert_eq!(c.client_id, "my:client");
        assert_eq!(c.client_secret, "s+cr t%");
    }

    #[test]
    fn basic_rejects_malformed_values() {
        assert!(parse_basic(b"Bearer abc").is_none());
        assert!(parse_basic(b"Basic !!!").is_none());
        assert!(parse_basic(basic("no-colon").as_bytes()).is_none());
        assert!(parse_basic(basic(":secret").as_bytes()).is_none());
        assert!(parse_basic(basic("id:bad%zz").as_bytes()).is_none());
        assert!(parse_basic(basic("id:trunc%4").as_bytes()).is_none());
        assert!(parse_basic(&[0xff, 0xfe]).is_none());
    }

    #[test]
    fn repeated_parameter_is_rejected() {
        assert_eq!(parse_form(b"grant_type=a&grant_type=b").err(), Some(FormError::Repeated));
        assert!(parse_form(b"grant_type=a&other=1&other=2").is_ok());
    }

    #[test]
    fn client_metadata_is_a_json_object_of_strings() {
        let form = parse_form(b"aws_client_metadata=%7B%22a%22%3A%22x%22%2C%22b%22%3A%22%22%7D").unwrap();
        let md = form.client_metadata.unwrap();
        assert_eq!((md.len(), md["a"].as_str(), md["b"].as_str()), (2, "x", ""));
        assert_eq!(parse_form(b"aws_client_metadata=%7B%7D").unwrap().client_metadata.unwrap().len(), 0);
        assert!(parse_form(b"grant_type=client_credentials").unwrap().client_metadata.is_none());
        for bad in [
            "",
            "null",
            "[]",
            "\"x\"",
            r#"{"a":1}"#,
            r#"{"a":null}"#,
            r#"{"a":{"b":"c"}}"#,
            r#"{"a":"x","a":"y"}"#,
            r#"{"a":"x"} trailing"#,
            r#"{"a":"x""#,
        ] {
            let body: String =
                form_urlencoded::Serializer::new(String::new()).append_pair("aws_client_metadata", bad).finish();
            assert_eq!(parse_form(body.as_bytes()).err(), Some(FormError::BadMetadata), "{bad}");
        }
        assert_eq!(
            parse_form(b"aws_client_metadata=%7B%7D&aws_client_metadata=%7B%7D").err(),
            Some(FormError::Repeated)
        );
    }

    #[test]
    fn scope_grammar() {
        assert_eq!(parse_scope("a/read  b/write a/read").unwrap(), vec!["a/read", "b/write"]);
        assert_eq!(parse_scope("").unwrap(), Vec::<String>::new());
        assert!(parse_scope("a\"b").is_none());
        assert!(parse_scope("a\\b").is_none());
        assert!(parse_scope("a\tb").is_none());
    }

    #[test]
    fn secret_comparison() {
        let d = digest("right");
        assert!(secret_matches("right", &d));
        assert!(!secret_matches("wrong", &d));
        assert!(!secret_matches("", &d));
    }
}
