//! The HTTP answers: RFC 6749 §5.1 success and §5.2 error bodies, both with `Cache-Control: no-store` and
//! `Pragma: no-cache` so no proxy or client library keeps a token or an error that mentions one.
//!
//! The access token is exposed from its secret wrapper here and nowhere else, straight into the response body.

use aws_lambda_events::apigw::ApiGatewayProxyResponse;
use aws_lambda_events::encodings::Body;
use http::header::{HeaderName, HeaderValue, CACHE_CONTROL, CONTENT_TYPE, PRAGMA, RETRY_AFTER};
use http::HeaderMap;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use tb_shared::ids::ScopeSet;

use crate::error::{retry_after_seconds, BrokerError};

#[derive(Serialize)]
struct SuccessBody<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: u64,
    scope: String,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'static str,
    error_description: &'static str,
    request_id: &'a str,
}

fn base_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json;charset=UTF-8"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    h
}

fn respond(status: u16, headers: HeaderMap, body: String) -> ApiGatewayProxyResponse {
    let mut r = ApiGatewayProxyResponse::default();
    r.status_code = i64::from(status);
    r.headers = headers;
    r.body = Some(Body::Text(body));
    r.is_base64_encoded = false;
    r
}

/// 200 with the token.
pub(crate) fn token(access_token: &SecretString, expires_in: u64, scope: &ScopeSet) -> ApiGatewayProxyResponse {
    let body = SuccessBody {
        access_token: access_token.expose_secret(),
        token_type: "Bearer",
        expires_in,
        scope: scope.to_param(),
    };
    // Serialising a struct of strings and integers cannot fail; the fallback keeps this path panic-free anyway.
    let text = serde_json::to_string(&body).unwrap_or_default();
    respond(200, base_headers(), text)
}

/// The error answer for `err`, from the one mapping in [`BrokerError::answer`].
pub(crate) fn error(err: &BrokerError, request_id: &str) -> ApiGatewayProxyResponse {
    let a = err.answer();
    let mut headers = base_headers();
    if let Some(d) = a.retry_after {
        headers.insert(RETRY_AFTER, HeaderValue::from(retry_after_seconds(d)));
    }
    if let Some(allow) = a.allow {
        headers.insert(HeaderName::from_static("allow"), HeaderValue::from_static(allow));
    }
    let body = ErrorBody { error: a.code, error_description: a.description, request_id };
    respond(a.status, headers, serde_json::to_string(&body).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn text(r: &ApiGatewayProxyResponse) -> &str {
        match &r.body {
            Some(Body::Text(t)) => t,
            _ => panic!("text body expected"),
        }
    }

    #[test]
    fn error_body_is_rfc6749_with_request_id_and_headers() {
        let err = BrokerError::QuotaExhausted { retry_after: Duration::from_millis(2500), window: "day".into() };
        let r = error(&err, "r-42");
        assert_eq!(r.status_code, 429);
        assert_eq!(
            text(&r),
            r#"{"error":"temporarily_unavailable","error_description":"the grant quota for this client is exhausted","request_id":"r-42"}"#
        );
        assert_eq!(r.headers["retry-after"], "3");
        assert_eq!(r.headers["cache-control"], "no-store");
        assert_eq!(r.headers["pragma"], "no-cache");
        assert!(r.headers.get("allow").is_none());
        let r = error(&BrokerError::MethodNotAllowed, "r-1");
        assert_eq!((r.status_code, r.headers["allow"].to_str().unwrap()), (405, "POST"));
        assert!(r.headers.get("retry-after").is_none());
    }

    #[test]
    fn token_body_has_exactly_the_four_fields() {
        let scope = ScopeSet::parse_param("b a").unwrap();
        let r = token(&SecretString::from("tok\"quoted"), 120, &scope);
        assert_eq!(r.status_code, 200);
        assert_eq!(text(&r), r#"{"access_token":"tok\"quoted","token_type":"Bearer","expires_in":120,"scope":"a b"}"#);
        assert_eq!(r.headers["cache-control"], "no-store");
    }
}
