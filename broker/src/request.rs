//! The token request grammar: what a `POST /oauth2/token` must look like before anything else happens.
//!
//! Parsing is strict and total: every input either becomes a [`TokenRequest`] or a [`BrokerError`], without a panic.
//! Identity is deliberately absent from this module: the body's `client_id` is kept only to compare it with the
//! caller the authorizer established, and the query string and headers other than `Content-Type` are never read.

use aws_lambda_events::apigw::ApiGatewayProxyRequest;
use base64::Engine as _;
use http::Method;

use crate::error::BrokerError;

/// Largest accepted body, after base64 decoding. A client-credentials request is well under 1 KiB; 8 KiB leaves room
/// for long scope lists (50 scopes × 256 bytes would not fit, but Cognito's own limits make that moot).
pub(crate) const MAX_BODY_BYTES: usize = 8 * 1024;

/// The parameters the broker understands, parsed from the form body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TokenRequest {
    /// The raw `scope` parameter, when present and non-empty (RFC 6749 §3.1: an empty value counts as absent).
    pub scope: Option<String>,
    /// The body's `client_id`, when present and non-empty. Never identity: only compared with the caller.
    pub client_id: Option<String>,
}

/// Parameters that carry client credentials. The broker authenticates callers at the gateway and holds the Cognito
/// secrets itself, so a caller sending one is confused or probing; either way nothing of it is forwarded.
const CREDENTIAL_PARAMS: [&str; 3] = ["client_secret", "client_assertion", "client_assertion_type"];

/// Applies the grammar to a proxy event: method, content type, size, form syntax, parameters.
pub(crate) fn parse(req: &ApiGatewayProxyRequest) -> Result<TokenRequest, BrokerError> {
    if req.http_method != Method::POST {
        return Err(BrokerError::MethodNotAllowed);
    }
    check_content_type(req)?;
    let body = body_bytes(req)?;
    parse_form(&body)
}

fn check_content_type(req: &ApiGatewayProxyRequest) -> Result<(), BrokerError> {
    let mut values = req.headers.get_all(http::header::CONTENT_TYPE).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(BrokerError::UnsupportedMediaType);
    };
    let value = value.to_str().map_err(|_| BrokerError::UnsupportedMediaType)?;
    let mut parts = value.split(';');
    let essence = parts.next().unwrap_or_default().trim();
    if !essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(BrokerError::UnsupportedMediaType);
    }
    for param in parts {
        // RFC 9110 §5.6.6 allows an empty parameter (`…-urlencoded;`, `…; charset=utf-8;`): it says nothing.
        if param.trim_matches([' ', '\t']).is_empty() {
            continue;
        }
        let Some((name, val)) = param.split_once('=') else {
            return Err(BrokerError::UnsupportedMediaType);
        };
        if name.trim().eq_ignore_ascii_case("charset") {
            let charset = val.trim().trim_matches('"');
            if !(charset.eq_ignore_ascii_case("utf-8") || charset.eq_ignore_ascii_case("us-ascii")) {
                return Err(BrokerError::UnsupportedMediaType);
            }
        }
    }
    Ok(())
}

fn body_bytes(req: &ApiGatewayProxyRequest) -> Result<Vec<u8>, BrokerError> {
    let raw = req.body.as_deref().unwrap_or_default();
    if !req.is_base64_encoded {
        if raw.len() > MAX_BODY_BYTES {
            return Err(BrokerError::PayloadTooLarge);
        }
        return Ok(raw.as_bytes().to_vec());
    }
    // Refuse before decoding anything that cannot decode to ≤ MAX_BODY_BYTES, so a huge body costs nothing.
    if raw.len() > MAX_BODY_BYTES.div_ceil(3) * 4 + 4 {
        return Err(BrokerError::PayloadTooLarge);
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(raw.trim_end())
        .map_err(|_| BrokerError::InvalidRequest("the request body is not valid base64"))?;
    if decoded.len() > MAX_BODY_BYTES {
        return Err(BrokerError::PayloadTooLarge);
    }
    Ok(decoded)
}

/// Parses `application/x-www-form-urlencoded` strictly: valid UTF-8 after decoding, valid percent escapes, every
/// pair has a `=`, no parameter twice (RFC 6749 §3.2), no credential parameters.
pub(crate) fn parse_form(body: &[u8]) -> Result<TokenRequest, BrokerError> {
    const MALFORMED: BrokerError = BrokerError::InvalidRequest("the request body is not a valid form");
    let text = std::str::from_utf8(body).map_err(|_| MALFORMED)?;
    let mut seen: Vec<String> = Vec::new();
    let mut grant_type = None;
    let mut scope = None;
    let mut client_id = None;
    for pair in text.split('&') {
        if pair.is_empty() {
            continue;
        }
        let (k, v) = pair.split_once('=').ok_or(MALFORMED)?;
        let key = decode_component(k).ok_or(MALFORMED)?;
        let value = decode_component(v).ok_or(MALFORMED)?;
        if key.is_empty() {
            return Err(MALFORMED);
        }
        if seen.contains(&key) {
            return Err(BrokerError::InvalidRequest("a parameter is repeated"));
        }
        if CREDENTIAL_PARAMS.contains(&key.as_str()) {
            return Err(BrokerError::InvalidRequest("client credentials must not be sent in the request body"));
        }
        match key.as_str() {
            "grant_type" => grant_type = non_empty(value),
            "scope" => scope = non_empty(value),
            "client_id" => client_id = non_empty(value),
            // RFC 6749 §3.2: unrecognised parameters are ignored (and never forwarded).
            _ => {}
        }
        seen.push(key);
    }
    match grant_type.as_deref() {
        None => Err(BrokerError::InvalidRequest("grant_type is required")),
        Some("client_credentials") => Ok(TokenRequest { scope, client_id }),
        Some(_) => Err(BrokerError::UnsupportedGrantType),
    }
}

fn non_empty(v: String) -> Option<String> {
    (!v.is_empty()).then_some(v)
}

/// Decodes one form component: `+` is a space, `%XX` a byte; the result must be UTF-8. `None` when malformed.
fn decode_component(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = hex_val(*bytes.get(i + 1)?)?;
                let lo = hex_val(*bytes.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn req(method: Method, ct: Option<&str>, body: &str, b64: bool) -> ApiGatewayProxyRequest {
        let mut r = ApiGatewayProxyRequest::default();
        r.http_method = method;
        if let Some(ct) = ct {
            r.headers.insert(http::header::CONTENT_TYPE, ct.parse().unwrap());
        }
        r.body = Some(body.to_owned());
        r.is_base64_encoded = b64;
        r
    }

    const FORM: &str = "application/x-www-form-urlencoded";

    #[test]
    fn accepts_a_plain_grant_with_scope_and_client_id() {
        let t = parse(&req(Method::POST, Some(FORM), "grant_type=client_credentials&scope=a%2Fb+c&client_id=x", false))
            .unwrap();
        assert_eq!(t.scope.as_deref(), Some("a/b c"));
        assert_eq!(t.client_id.as_deref(), Some("x"));
    }

    #[test]
    fn method_content_type_and_size() {
        let ok = "grant_type=client_credentials";
        assert_eq!(parse(&req(Method::GET, Some(FORM), ok, false)), Err(BrokerError::MethodNotAllowed));
        assert_eq!(
            parse(&req(Method::POST, Some("application/json"), ok, false)),
            Err(BrokerError::UnsupportedMediaType)
        );
        assert_eq!(parse(&req(Method::POST, None, ok, false)), Err(BrokerError::UnsupportedMediaType));
        assert!(parse(&req(Method::POST, Some("Application/X-WWW-Form-Urlencoded; charset=UTF-8"), ok, false)).is_ok());
        assert_eq!(
            parse(&req(Method::POST, Some("application/x-www-form-urlencoded; charset=latin1"), ok, false)),
            Err(BrokerError::UnsupportedMediaType)
        );
        for empty_param in ["application/x-www-form-urlencoded;", "application/x-www-form-urlencoded; charset=utf-8; "]
        {
            assert!(parse(&req(Method::POST, Some(empty_param), ok, false)).is_ok(), "{empty_param}");
        }
        for bad in ["application/x-www-form-urlencoded; charset", "application/x-www-form-urlencoded;; charset=latin1"]
        {
            assert_eq!(
                parse(&req(Method::POST, Some(bad), ok, false)),
                Err(BrokerError::UnsupportedMediaType),
                "{bad}"
            );
        }
        // 8 KiB exactly is served, one byte more is not (literal sizes, so a change of the limit shows here).
        let at_limit = format!("{ok}&pad={}", "a".repeat(8192 - ok.len() - "&pad=".len()));
        assert_eq!(at_limit.len(), 8192);
        assert!(parse(&req(Method::POST, Some(FORM), &at_limit, false)).is_ok());
        let over = format!("{at_limit}a");
        assert_eq!(parse(&req(Method::POST, Some(FORM), &over, false)), Err(BrokerError::PayloadTooLarge));
        let big = format!("{ok}&pad={}", "a".repeat(MAX_BODY_BYTES));
        assert_eq!(parse(&req(Method::POST, Some(FORM), &big, false)), Err(BrokerError::PayloadTooLarge));
        // The base64 of exactly 8 KiB (10,924 characters) is served, also with the four trailing line breaks the
        // precheck leaves room for; one character more than that is refused before decoding.
        let at_limit_b64 = base64::engine::general_purpose::STANDARD.encode(&at_limit);
        assert_eq!(at_limit_b64.len(), 10_924);
        assert!(parse(&req(Method::POST, Some(FORM), &at_limit_b64, true)).is_ok());
        let padded = format!("{at_limit_b64}\r\n\r\n");
        assert!(parse(&req(Method::POST, Some(FORM), &padded, true)).is_ok());
        let one_more = format!("{padded} ");
        assert_eq!(parse(&req(Method::POST, Some(FORM), &one_more, true)), Err(BrokerError::PayloadTooLarge));
        assert_eq!(parse(&req(Method::POST, Some(FORM), &"!".repeat(10_929), true)), Err(BrokerError::PayloadTooLarge));
        // Too long to decode to 8 KiB is refused before decoding: 413, even when it is not base64 at all.
        let not_b64 = "!".repeat(20_000);
        assert_eq!(parse(&req(Method::POST, Some(FORM), &not_b64, true)), Err(BrokerError::PayloadTooLarge));
        let b64 = base64::engine::general_purpose::STANDARD.encode(&big);
        assert_eq!(parse(&req(Method::POST, Some(FORM), &b64, true)), Err(BrokerError::PayloadTooLarge));
        let b64 = base64::engine::general_purpose::STANDARD.encode(ok);
        assert!(parse(&req(Method::POST, Some(FORM), &b64, true)).is_ok());
        assert!(matches!(parse(&req(Method::POST, Some(FORM), "%%%", true)), Err(BrokerError::InvalidRequest(_))));
    }

    #[test]
    fn form_errors() {
        let bad = |b: &str| parse_form(b.as_bytes());
        assert!(matches!(bad("grant_type=client_credentials&scope=%zz"), Err(BrokerError::InvalidRequest(_))));
        assert!(matches!(bad("grant_type=client_credentials&scope"), Err(BrokerError::InvalidRequest(_))));
        assert!(matches!(bad("grant_type=client_credentials&%FF=1"), Err(BrokerError::InvalidRequest(_))));
        assert_eq!(
            bad("grant_type=client_credentials&grant_type=client_credentials"),
            Err(BrokerError::InvalidRequest("a parameter is repeated"))
        );
        assert_eq!(
            bad("grant_type=client_credentials&x=1&x=2"),
            Err(BrokerError::InvalidRequest("a parameter is repeated"))
        );
        assert!(matches!(bad("grant_type=client_credentials&client_secret=s"), Err(BrokerError::InvalidRequest(_))));
        assert!(matches!(bad("grant_type=client_credentials&client_assertion=j"), Err(BrokerError::InvalidRequest(_))));
        assert_eq!(bad("scope=a"), Err(BrokerError::InvalidRequest("grant_type is required")));
        assert_eq!(bad("grant_type="), Err(BrokerError::InvalidRequest("grant_type is required")));
        assert_eq!(bad("grant_type=password"), Err(BrokerError::UnsupportedGrantType));
        assert_eq!(bad("grant_type=client_credentials&scope=").unwrap().scope, None);
    }

    proptest! {
        #[test]
        fn never_panics(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_form(&body);
        }

        #[test]
        fn encoded_values_round_trip(scope in "\\PC{1,64}") {
            let body: String = form_urlencoded::Serializer::new(String::new())
                .append_pair("grant_type", "client_credentials")
                .append_pair("scope", &scope)
                .finish();
            let t = parse_form(body.as_bytes()).unwrap();
            prop_assert_eq!(t.scope.as_deref(), Some(scope.as_str()));
        }
    }
}
