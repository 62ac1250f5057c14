//! The Lambda events API Gateway builds for the two functions, and the mapping of the broker's proxy response back
//! to HTTP: the REQUEST authorizer event (with `requestContext.identity.clientCert` as API Gateway fills it), the
//! proxy event with `requestContext.authorizer` (and the same `clientCert` on the mTLS domain), and the proxy
//! response passed through to the client.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerRequestTypeRequest, ApiGatewayCustomAuthorizerRequestTypeRequestContext,
    ApiGatewayCustomAuthorizerRequestTypeRequestIdentity,
    ApiGatewayCustomAuthorizerRequestTypeRequestIdentityClientCert,
    ApiGatewayCustomAuthorizerRequestTypeRequestIdentityClientCertValidity, ApiGatewayProxyRequest,
    ApiGatewayProxyRequestContext, ApiGatewayProxyResponse, ApiGatewayRequestIdentity,
};
use aws_lambda_events::encodings::Body as LambdaBody;
use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};
use serde_json::Value;

use super::{ConnInfo, HttpResponse, ACCOUNT_ID, API_ID};

/// The resource and path of the only method.
const TOKEN_PATH: &str = "/oauth2/token";
/// The resource id of the token resource in both events.
const RESOURCE_ID: &str = "tokres";

/// `Mon DD HH:MM:SS YYYY GMT`, the form API Gateway uses for `clientCert.validity`.
fn gmt(ts: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(ts) {
        Ok(t) => {
            let month = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
                [usize::from(u8::from(t.month())) - 1];
            format!("{month} {:>2} {:02}:{:02}:{:02} {} GMT", t.day(), t.hour(), t.minute(), t.second(), t.year())
        }
        Err(_) => String::new(),
    }
}

/// `clientCert` as API Gateway fills it: the PEM of the leaf and what it parsed from it.
pub fn client_cert_identity(der: &[u8]) -> ApiGatewayCustomAuthorizerRequestTypeRequestIdentityClientCert {
    let mut cc = ApiGatewayCustomAuthorizerRequestTypeRequestIdentityClientCert::default();
    cc.client_cert_pem = Some(tb_devkit::pki::to_pem("CERTIFICATE", der));
    if let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) {
        cc.subject_dn = Some(cert.subject().to_string());
        cc.issuer_dn = Some(cert.issuer().to_string());
        cc.serial_number = Some(cert.raw_serial_as_string());
        let mut v = ApiGatewayCustomAuthorizerRequestTypeRequestIdentityClientCertValidity::default();
        v.not_before = Some(gmt(cert.validity().not_before.timestamp()));
        v.not_after = Some(gmt(cert.validity().not_after.timestamp()));
        cc.validity = v;
    }
    cc
}

fn headers_for_event(h: &HeaderMap) -> (HeaderMap, HeaderMap) {
    // API Gateway's `headers` keeps the last value of a repeated header; `multiValueHeaders` keeps all.
    let mut single = HeaderMap::new();
    for (k, v) in h {
        single.insert(k.clone(), v.clone());
    }
    (single, h.clone())
}

fn query_map(uri: &http::Uri) -> (aws_lambda_events::query_map::QueryMap, aws_lambda_events::query_map::QueryMap) {
    let mut all: HashMap<String, Vec<String>> = HashMap::new();
    if let Some(q) = uri.query() {
        for (k, v) in form_urlencoded::parse(q.as_bytes()) {
            all.entry(k.into_owned()).or_default().push(v.into_owned());
        }
    }
    let single: HashMap<String, String> =
        all.iter().filter_map(|(k, v)| v.last().map(|last| (k.clone(), last.clone()))).collect();
    (single.into(), all.into())
}

/// The REQUEST authorizer event for `req` on `stage`.
pub(super) fn authorizer_event(
    stage: &str,
    req: &http::Request<Bytes>,
    conn: &ConnInfo,
    rid: &str,
    method_arn: &str,
) -> ApiGatewayCustomAuthorizerRequestTypeRequest {
    let (headers, multi) = headers_for_event(req.headers());
    let (q, mq) = query_map(req.uri());
    let mut identity = ApiGatewayCustomAuthorizerRequestTypeRequestIdentity::default();
    identity.source_ip = Some(conn.peer.ip().to_string());
    identity.client_cert = conn.client_cert.as_ref().map(|der| client_cert_identity(der));
    let mut ctx = ApiGatewayCustomAuthorizerRequestTypeRequestContext::default();
    ctx.path = Some(format!("/{stage}{TOKEN_PATH}"));
    ctx.account_id = Some(ACCOUNT_ID.into());
    ctx.resource_id = Some(RESOURCE_ID.into());
    ctx.stage = Some(stage.to_owned());
    ctx.request_id = Some(rid.to_owned());
    ctx.identity = Some(identity);
    ctx.resource_path = Some(TOKEN_PATH.into());
    ctx.http_method = Some(Method::POST);
    ctx.apiid = Some(API_ID.into());
    let mut ev = ApiGatewayCustomAuthorizerRequestTypeRequest::default();
    ev.type_ = Some("REQUEST".into());
    ev.method_arn = Some(method_arn.to_owned());
    ev.resource = Some(TOKEN_PATH.into());
    ev.path = Some(TOKEN_PATH.into());
    ev.http_method = Some(Method::POST);
    ev.headers = headers;
    ev.multi_value_headers = multi;
    ev.query_string_parameters = q;
    ev.multi_value_query_string_parameters = mq;
    ev.request_context = ctx;
    ev
}

/// The proxy event for the broker as the JSON Lambda hands the function: [`proxy_event`] with
/// `requestContext.identity.clientCert` on the mTLS domain, which API Gateway passes to the integration too (the
/// Rust event type has no such field, so only the JSON can carry it; the broker must ignore it).
pub(super) fn proxy_event_json(
    stage: &str,
    req: http::Request<Bytes>,
    conn: &ConnInfo,
    rid: &str,
    answer: &Value,
) -> Value {
    let mut ev = serde_json::to_value(proxy_event(stage, req, conn, rid, answer)).unwrap_or(Value::Null);
    if let (Some(der), Some(Value::Object(identity))) = (&conn.client_cert, ev.pointer_mut("/requestContext/identity"))
    {
        let cert = serde_json::to_value(client_cert_identity(der)).unwrap_or(Value::Null);
        identity.insert("clientCert".into(), cert);
    }
    ev
}

/// The proxy event for the broker: `req` on `stage`, with the authorizer's `answer` (its context and
/// `principalId`) in `requestContext.authorizer`.
pub(super) fn proxy_event(
    stage: &str,
    req: http::Request<Bytes>,
    conn: &ConnInfo,
    rid: &str,
    answer: &Value,
) -> ApiGatewayProxyRequest {
    let (parts, body) = req.into_parts();
    let (headers, multi) = headers_for_event(&parts.headers);
    let (q, mq) = query_map(&parts.uri);
    let mut identity = ApiGatewayRequestIdentity::default();
    identity.source_ip = Some(conn.peer.ip().to_string());
    identity.user_agent = parts.headers.get("user-agent").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let mut ctx = ApiGatewayProxyRequestContext::default();
    ctx.account_id = Some(ACCOUNT_ID.into());
    ctx.resource_id = Some(RESOURCE_ID.into());
    ctx.stage = Some(stage.to_owned());
    ctx.domain_name = parts.headers.get("host").and_then(|v| v.to_str().ok()).map(str::to_owned);
    ctx.request_id = Some(rid.to_owned());
    ctx.protocol = Some("HTTP/1.1".into());
    ctx.identity = identity;
    ctx.resource_path = Some(TOKEN_PATH.into());
    ctx.path = Some(format!("/{stage}{TOKEN_PATH}"));
    ctx.http_method = Method::POST;
    ctx.apiid = Some(API_ID.into());
    ctx.request_time_epoch = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    // API Gateway hands the authorizer's context on next to principalId and integrationLatency.
    let mut fields: HashMap<String, Value> = match answer.get("context") {
        Some(Value::Object(m)) => m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        _ => HashMap::new(),
    };
    if let Some(p) = answer.get("principalId") {
        fields.insert("principalId".into(), p.clone());
    }
    fields.insert("integrationLatency".into(), Value::from(0));
    ctx.authorizer.fields = fields;

    let mut ev = ApiGatewayProxyRequest::default();
    ev.resource = Some(TOKEN_PATH.into());
    ev.path = Some(TOKEN_PATH.into());
    ev.http_method = Method::POST;
    ev.headers = headers;
    ev.multi_value_headers = multi;
    ev.query_string_parameters = q;
    ev.multi_value_query_string_parameters = mq;
    ev.request_context = ctx;
    // No binary media types on this API: the body arrives as text, or base64 when it is not UTF-8.
    if !body.is_empty() {
        match std::str::from_utf8(&body) {
            Ok(s) => ev.body = Some(s.to_owned()),
            Err(_) => {
                ev.body = Some(base64::engine::general_purpose::STANDARD.encode(&body));
                ev.is_base64_encoded = true;
            }
        }
    }
    ev
}

/// The broker's proxy response as the client receives it (request id header set); `None` when the status code is
/// not a valid HTTP status (API Gateway then answers 502).
pub(super) fn proxy_response(out: ApiGatewayProxyResponse, rid: &str) -> Option<HttpResponse> {
    let status = u16::try_from(out.status_code).ok().and_then(|s| StatusCode::from_u16(s).ok())?;
    let body = match out.body {
        Some(LambdaBody::Text(t)) if out.is_base64_encoded => {
            base64::engine::general_purpose::STANDARD.decode(t.as_bytes()).unwrap_or_default()
        }
        Some(LambdaBody::Text(t)) => t.into_bytes(),
        Some(LambdaBody::Binary(b)) => b,
        _ => Vec::new(),
    };
    let mut resp = Response::new(http_body_util::Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    for (k, v) in &out.multi_value_headers {
        h.append(k.clone(), v.clone());
    }
    for (k, v) in &out.headers {
        h.insert(k.clone(), v.clone());
    }
    if let Ok(v) = HeaderValue::from_str(rid) {
        h.insert("x-amzn-requestid", v);
    }
    Some(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validity_is_in_api_gateways_format() {
        assert_eq!(gmt(1_559_046_602), "May 28 12:30:02 2019 GMT");
    }

    fn request() -> http::Request<Bytes> {
        http::Request::builder()
            .method("POST")
            .uri("/oauth2/token")
            .header("host", "127.0.0.1")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Bytes::from_static(b"grant_type=client_credentials"))
            .unwrap()
    }

    fn conn(domain: super::super::Domain, cert: Option<Vec<u8>>) -> ConnInfo {
        ConnInfo { peer: "127.0.0.1:5000".parse().unwrap(), domain, client_cert: cert.map(std::sync::Arc::new) }
    }

    /// As API Gateway does, the proxy event of an mTLS request carries the client certificate, and it still reads
    /// as the broker's event type; the partner domain's carries none.
    #[test]
    fn the_proxy_event_carries_the_client_certificate_on_the_mtls_domain() {
        let leaf = tb_devkit::pki::TestCa::root("Dev Root CA").unwrap().issue_client().cn("c").build().unwrap();
        let answer = serde_json::json!({"principalId": "reporting", "context": {"callerId": "reporting"}});
        let mtls = conn(super::super::Domain::Mtls, Some(leaf.der.clone()));
        let ev = proxy_event_json("v1", request(), &mtls, "rid-1", &answer);
        let cert = &ev["requestContext"]["identity"]["clientCert"];
        assert_eq!(cert["clientCertPem"], leaf.pem.as_str(), "{ev}");
        assert!(cert["subjectDN"].as_str().is_some_and(|s| s.contains("CN=c")), "{cert}");
        assert!(cert["validity"]["notAfter"].as_str().is_some_and(|s| s.ends_with("GMT")), "{cert}");
        let typed: ApiGatewayProxyRequest = serde_json::from_value(ev).unwrap();
        assert_eq!(typed.request_context.authorizer.fields["principalId"], "reporting");
        assert_eq!(typed.body.as_deref(), Some("grant_type=client_credentials"));

        let partner = conn(super::super::Domain::Partner, None);
        let ev = proxy_event_json("v1", request(), &partner, "rid-2", &answer);
        assert!(ev["requestContext"]["identity"].get("clientCert").is_none(), "{ev}");
    }
}
