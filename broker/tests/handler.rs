//! Acceptance tests for the broker handler: the real handler against the Cognito stand-in over real HTTP on
//! loopback, with in-memory quota and credential stores. Every row of the error table in docs/design.md that the broker
//! answers is here with its exact status and error code (the 401/403 rows of the authorizer are the authorizer's).

mod support;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use http::Method;
use support::*;
use tb_broker::metric_names as names;
use tb_shared::ids::CallerId;

const GRANT: &str = "grant_type=client_credentials";

// ---------------------------------------------------------------- happy path

/// GIVEN a caller allowed api/read and api/write WHEN it asks for api/write THEN it gets a Cognito token for exactly
/// api/write, with no-store headers, from one upstream call made with its app client.
#[tokio::test]
async fn happy_path_returns_the_approved_scope_with_no_store_headers() {
    let h = Harness::start().await;
    let r = h.post("order-svc", "grant_type=client_credentials&scope=api%2Fwrite").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_no_store(&r);
    assert_eq!(r.json["token_type"], "Bearer");
    assert_eq!(r.json["scope"], "api/write");
    assert_eq!(r.expires_in(), 3600);
    let claims = h.standin.verify_access_token(r.token()).unwrap();
    assert_eq!(claims.scopes(), vec!["api/write"]);
    assert_eq!(claims.client_id, "orders-client");
    assert_eq!(h.standin.token_requests(), 1);
    assert_eq!(h.metric_total(names::GRANTS), 1.0);
    let keys: Vec<&String> = r.json.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 4, "only access_token, token_type, expires_in, scope: {keys:?}");
}

/// GIVEN a caller with default scope api/read WHEN it names no scope (or an empty one) THEN it gets api/read.
#[tokio::test]
async fn default_scopes_when_none_requested() {
    let h = Harness::start().await;
    for body in [GRANT, "grant_type=client_credentials&scope="] {
        let r = h.post("order-svc", body).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.json["scope"], "api/read");
        assert_eq!(h.standin.verify_access_token(r.token()).unwrap().scopes(), vec!["api/read"]);
    }
}

/// GIVEN an RFC 8705-style client that sends its own id as client_id THEN the request is served normally.
#[tokio::test]
async fn body_client_id_equal_to_the_caller_is_accepted() {
    let h = Harness::start().await;
    let r = h.post("order-svc", "grant_type=client_credentials&client_id=order-svc&scope=api%2Fread+api%2Fwrite").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json["scope"], "api/read api/write");
}

/// GIVEN API Gateway delivers the body base64-encoded THEN it is decoded and served.
#[tokio::test]
async fn base64_encoded_body_is_served() {
    let h = Harness::start().await;
    let mut req = request(Some("order-svc"), &base64::engine::general_purpose::STANDARD.encode(GRANT));
    req.is_base64_encoded = true;
    req.headers.insert("content-type", "application/x-www-form-urlencoded; charset=UTF-8".parse().unwrap());
    let r = h.send(req).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

// ---------------------------------------------------------------- error table

/// Every grammar, scope and client_id row of the error table: exact status and code, no-store, request id, and
/// not one upstream call or quota charge.
#[tokio::test]
async fn error_table_rows_before_any_upstream_call() {
    let h = Harness::start().await;
    let big = format!("{GRANT}&pad={}", "a".repeat(8 * 1024));
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    type Tweak = Box<dyn Fn(&mut aws_lambda_events::apigw::ApiGatewayProxyRequest)>;
    let none: fn() -> Tweak = || Box::new(|_| {});
    let rows: Vec<(&str, &str, &str, Tweak, i64, &str)> = vec![
        ("GET", "order-svc", GRANT, Box::new(|r| r.http_method = Method::GET), 405, "invalid_request"),
        ("PUT", "order-svc", GRANT, Box::new(|r| r.http_method = Method::PUT), 405, "invalid_request"),
        (
            "json content type",
            "order-svc",
            r#"{"grant_type":"client_credentials"}"#,
            Box::new(|r| {
                r.headers.insert("content-type", "application/json".parse().unwrap());
            }),
            415,
            "invalid_request",
        ),
        (
            "no content type",
            "order-svc",
            GRANT,
            Box::new(|r| {
                r.headers.remove("content-type");
            }),
            415,
            "invalid_request",
        ),
        ("oversized body", "order-svc", &big, none(), 413, "invalid_request"),
        (
            "oversized base64 body",
            "order-svc",
            "",
            {
                let enc = b64(&big);
                Box::new(move |r| {
                    r.body = Some(enc.clone());
                    r.is_base64_encoded = true;
                })
            },
            413,
            "invalid_request",
        ),
        (
            "bad base64",
            "order-svc",
            "",
            Box::new(|r| {
                r.body = Some("!!not-base64!!".into());
                r.is_base64_encoded = true;
            }),
            400,
            "invalid_request",
        ),
        ("bad percent escape", "order-svc", "grant_type=client_credentials&scope=%zz", none(), 400, "invalid_request"),
        ("pair without =", "order-svc", "grant_type=client_credentials&scope", none(), 400, "invalid_request"),
        (
            "repeated scope",
            "order-svc",
            "grant_type=client_credentials&scope=api%2Fread&scope=api%2Fread",
            none(),
            400,
            "invalid_request",
        ),
        (
            "repeated grant_type",
            "order-svc",
            "grant_type=client_credentials&grant_type=client_credentials",
            none(),
            400,
            "invalid_request",
        ),
        ("missing grant_type", "order-svc", "scope=api%2Fread", none(), 400, "invalid_request"),
        ("empty body", "order-svc", "", none(), 400, "invalid_request"),
        (
            "client_secret in body",
            "order-svc",
            "grant_type=client_credentials&client_secret=x",
            none(),
            400,
            "invalid_request",
        ),
        (
            "client_assertion in body",
            "order-svc",
            "grant_type=client_credentials&client_assertion=a.b.c",
            none(),
            400,
            "invalid_request",
        ),
        (
            "password grant",
            "order-svc",
            "grant_type=password&username=u&password=p",
            none(),
            400,
            "unsupported_grant_type",
        ),
        (
            "authorization_code grant",
            "order-svc",
            "grant_type=authorization_code&code=c",
            none(),
            400,
            "unsupported_grant_type",
        ),
        (
            "scope not allowed",
            "order-svc",
            "grant_type=client_credentials&scope=api%2Fadmin",
            none(),
            400,
            "invalid_scope",
        ),
        (
            "one of two scopes not allowed",
            "order-svc",
            "grant_type=client_credentials&scope=api%2Fread+api%2Fadmin",
            none(),
            400,
            "invalid_scope",
        ),
        (
            "malformed scope",
            "order-svc",
            "grant_type=client_credentials&scope=api%2Fread++api%2Fwrite",
            none(),
            400,
            "invalid_scope",
        ),
        (
            "scope with a quote",
            "order-svc",
            "grant_type=client_credentials&scope=api%22read",
            none(),
            400,
            "invalid_scope",
        ),
        ("no scope and no default", "nodefault-svc", GRANT, none(), 400, "invalid_scope"),
        (
            "client_id of another caller",
            "order-svc",
            "grant_type=client_credentials&client_id=other-svc",
            none(),
            401,
            "invalid_client",
        ),
        (
            "client_id differing in case",
            "order-svc",
            "grant_type=client_credentials&client_id=Order-svc",
            none(),
            401,
            "invalid_client",
        ),
        ("unknown caller", "ghost-svc", GRANT, none(), 403, "unauthorized_client"),
        ("disabled caller", "disabled-svc", GRANT, none(), 403, "unauthorized_client"),
    ];
    for (name, caller, body, tweak, status, code) in rows {
        let mut req = request(Some(caller), body);
        tweak(&mut req);
        let r = h.send(req).await;
        assert_eq!(r.outcome(), (status, code), "row {name:?}: {}", r.body);
        assert_error(&r, status, code);
        if status == 405 {
            assert_eq!(r.header("allow"), Some("POST"), "row {name:?}");
        }
    }
    assert_eq!(h.standin.token_requests(), 0, "no row may reach Cognito");
    assert_eq!(h.store_reads(), 0, "no row may read credentials");
}

/// The error body names no internal resource: no Cognito URL or client id, no store names, no upstream text.
#[tokio::test]
async fn error_descriptions_name_nothing_internal() {
    let h = Harness::start().await;
    h.standin.faults().fail_all(500);
    let r = h.post("order-svc", GRANT).await;
    assert_error(&r, 503, "temporarily_unavailable");
    let lower = r.body.to_ascii_lowercase();
    for word in ["127.0.0.1", "oauth2/token", "orders-client", "cognito", "dynamo", "ssm", "server_error\"}"] {
        assert!(!lower.contains(word), "{word} in {}", r.body);
    }
}

// ---------------------------------------------------------------- the trust rule

/// GIVEN order-svc is the caller the authorizer established WHEN the request also carries other-svc's id in
/// headers, a forged context-like header, the query string and extra fields THEN the caller stays order-svc: its
/// scope, its app client; other-svc's app client is never used.
#[tokio::test]
async fn spoofed_caller_ids_never_change_the_caller() {
    let h = Harness::start().await;
    let spoof = |body: &str| {
        let mut req = request(Some("order-svc"), body);
        for name in ["x-amzn-authorizer-callerid", "x-caller-id", "callerid", "x-amzn-apigateway-api-id", "principalid"]
        {
            req.headers.insert(name, "other-svc".parse().unwrap());
            req.multi_value_headers.append(name, "other-svc".parse().unwrap());
        }
        req.headers.insert("authorization", "Bearer forged".parse().unwrap());
        req.query_string_parameters =
            [("callerId".to_string(), "other-svc".to_string()), ("client_id".to_string(), "other-svc".to_string())]
                .into_iter()
                .collect::<std::collections::HashMap<_, _>>()
                .into();
        req.path_parameters.insert("callerId".into(), "other-svc".into());
        req.stage_variables.insert("callerId".into(), "other-svc".into());
        req.request_context.identity.user = Some("other-svc".into());
        req.request_context.identity.caller = Some("other-svc".into());
        req
    };

    let r = h.send(spoof(GRANT)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json["scope"], "api/read", "order-svc's default, not other-svc's api/admin");
    assert_eq!(h.standin.verify_access_token(r.token()).unwrap().client_id, "orders-client");

    let r = h.send(spoof("grant_type=client_credentials&scope=api%2Fadmin")).await;
    assert_error(&r, 400, "invalid_scope");

    let r = h.send(spoof("grant_type=client_credentials&client_id=other-svc")).await;
    assert_error(&r, 401, "invalid_client");

    assert_eq!(h.standin.token_requests_for("others-client"), 0);
    assert_eq!(h.standin.token_requests_for("orders-client"), 1);
}

/// GIVEN the event as the runtime hands it over (JSON) carrying another caller's client certificate in
/// `requestContext.identity.clientCert` THEN the certificate changes nothing: the caller is the one in
/// `requestContext.authorizer`, and without an authorizer context the request is a 500 like any other.
#[tokio::test]
async fn spoofed_client_certificate_in_the_identity_is_ignored() {
    let h = Harness::start().await;
    let ca = tb_devkit::pki::TestCa::root("Spoofing CA").unwrap();
    let other = ca.issue_client().san_uri("spiffe://test/other-svc").cn("other-svc").build().unwrap();
    let with_cert = |caller: Option<&str>, body: &str| -> aws_lambda_events::apigw::ApiGatewayProxyRequest {
        let mut event = serde_json::to_value(request(caller, body)).unwrap();
        event["requestContext"]["identity"]["clientCert"] = serde_json::json!({
            "clientCertPem": other.pem,
            "subjectDN": "CN=other-svc",
            "issuerDN": "CN=Spoofing CA",
            "serialNumber": "01",
            "validity": { "notBefore": "Jan 1 00:00:00 2020 GMT", "notAfter": "Jan 1 00:00:00 2099 GMT" },
        });
        event["requestContext"]["identity"]["caller"] = serde_json::json!("other-svc");
        serde_json::from_value(event).unwrap()
    };

    let r = h.send(with_cert(Some("order-svc"), GRANT)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json["scope"], "api/read", "order-svc's default, not other-svc's api/admin");
    assert_eq!(h.standin.verify_access_token(r.token()).unwrap().client_id, "orders-client");
    assert_error(
        &h.send(with_cert(Some("order-svc"), "grant_type=client_credentials&scope=api%2Fadmin")).await,
        400,
        "invalid_scope",
    );

    let r = h.send(with_cert(None, GRANT)).await;
    assert_error(&r, 500, "server_error");
    assert_eq!(h.standin.token_requests_for("others-client"), 0);
    assert_eq!(h.standin.token_requests(), 1);
    assert_eq!(h.metric_total(names::MISSING_CONTEXT_ALARM), 1.0);
}

/// GIVEN an event without any authorizer context, even one whose headers and body name a real caller THEN 500
/// server_error, no upstream call, no credential read, and the missing-context alarm metric.
#[tokio::test]
async fn missing_authorizer_context_is_a_500_and_no_token() {
    let h = Harness::start().await;
    let mut req = request(None, "grant_type=client_credentials&client_id=order-svc");
    req.headers.insert("x-amzn-authorizer-callerid", "order-svc".parse().unwrap());
    let r = h.send(req).await;
    assert_error(&r, 500, "server_error");

    // A context with the caller id but missing the rest of the contract is not a context either.
    let mut req = request(Some("order-svc"), GRANT);
    req.request_context.authorizer.fields.remove("authMethod");
    assert_error(&h.send(req).await, 500, "server_error");

    // Nor is a context whose caller id is not a valid id.
    let mut req = request(Some("order-svc"), GRANT);
    req.request_context.authorizer.fields.insert("callerId".into(), serde_json::json!("order svc"));
    assert_error(&h.send(req).await, 500, "server_error");

    assert_eq!(h.standin.token_requests(), 0);
    assert_eq!(h.store_reads(), 0);
    assert_eq!(h.metric_total(names::MISSING_CONTEXT_ALARM), 3.0);
}

// ---------------------------------------------------------------- quotas

/// GIVEN a caller limited to 3 grants a day WHEN 50 requests arrive at once THEN exactly 3 tokens and 47 × 429
/// with a Retry-After no longer than a day, and exactly 3 upstream calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn quota_of_three_a_day_under_fifty_concurrent_requests() {
    let h = Arc::new(Harness::start().await);
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let h = h.clone();
        tasks.push(tokio::spawn(async move { h.post("limited-svc", GRANT).await }));
    }
    let mut ok = 0;
    let mut limited = 0;
    for t in tasks {
        let r = t.await.unwrap();
        match r.status {
            200 => ok += 1,
            429 => {
                assert_error(&r, 429, "temporarily_unavailable");
                let secs = retry_after(&r);
                assert!((1..=86_400).contains(&secs), "{secs}");
                limited += 1;
            }
            _ => panic!("unexpected {}", r.body),
        }
    }
    assert_eq!((ok, limited), (3, 47));
    assert_eq!(h.standin.token_requests(), 3);
    assert_eq!(h.metric_total(names::QUOTA_EXHAUSTED), 47.0);
}

/// GIVEN a caller with 3 grants a day WHEN Cognito fails a request THEN that request's charge is given back, and the
/// caller still gets its 3 tokens.
#[tokio::test]
async fn failed_upstream_call_gives_its_count_back() {
    let h = Harness::start().await;
    let caller = CallerId::try_from("limited-svc").unwrap();
    let day = h.broker.policy.caller(&caller).unwrap().quotas[0].clone();
    h.standin.faults().fail_next(2, 503); // the attempt and its retry
    let r = h.post("limited-svc", GRANT).await;
    assert_error(&r, 503, "temporarily_unavailable");
    assert_eq!(h.quotas.count(&caller, &day, SystemTime::now()), 0);
    for _ in 0..3 {
        assert_eq!(h.post("limited-svc", GRANT).await.status, 200);
    }
    assert_eq!(h.quotas.count(&caller, &day, SystemTime::now()), 3);
    assert_error(&h.post("limited-svc", GRANT).await, 429, "temporarily_unavailable");
}

// ---------------------------------------------------------------- lifetime

/// GIVEN a caller whose maximum token lifetime (600 s) is shorter than its app client's validity (3600 s) THEN the
/// token is refused with 502 server_error and an alarm metric (a signed token cannot be shortened), and the charge
/// is kept: Cognito did issue a token, and every retry would make it issue another.
#[tokio::test]
async fn token_longer_than_the_callers_maximum_is_refused() {
    let h = Harness::start().await;
    let r = h.post("short-svc", GRANT).await;
    assert_error(&r, 502, "server_error");
    assert_eq!(h.metric_total(names::LIFETIME_ALARM), 1.0);
    assert_eq!(h.charged("short-svc"), 1);
}

/// GIVEN two callers of one app client with token reuse on, one allowed 3600 s tokens and one 600 s THEN neither is
/// ever handed the other's token (a token names its caller in its claims): while Cognito issues 3600 s tokens the
/// short-lived caller gets 502; once the app client's validity is lowered to 600 s it gets a fresh token of its own,
/// and each caller is then served its own cached token.
#[tokio::test]
async fn callers_sharing_an_app_client_never_share_a_token() {
    let h = Harness::start().await;
    let long = h.post("reuse-svc", GRANT).await;
    assert_eq!((long.status, long.expires_in()), (200, 3600), "{}", long.body);

    let refused = h.post("reuse-short-svc", GRANT).await;
    assert_error(&refused, 502, "server_error");
    assert_eq!(h.standin.token_requests(), 2, "the other caller's cached token was not served; Cognito was asked");
    assert_eq!(h.metric_total(names::REUSE_HITS), 0.0);

    h.standin.upsert_client(
        tb_devkit::cognito::StandinClient::new("reusers-client", h.secrets[2].clone(), &["api/read"])
            .token_validity(Duration::from_secs(600)),
    );
    let short = h.post("reuse-short-svc", GRANT).await;
    assert_eq!(short.status, 200, "{}", short.body);
    assert_ne!(short.token(), long.token());
    assert_eq!(short.expires_in(), 600);
    assert_eq!(h.standin.token_requests(), 3);

    let again = h.post("reuse-svc", GRANT).await;
    assert_eq!(again.token(), long.token(), "its own cached token, not the other caller's newer one");
    let short_again = h.post("reuse-short-svc", GRANT).await;
    assert_eq!(short_again.token(), short.token());
    assert!(short_again.expires_in() < 600);
    assert_eq!(h.standin.token_requests(), 3);
    assert_eq!(h.metric_total(names::REUSE_HITS), 2.0);
}

// ---------------------------------------------------------------- hostile upstream answers

/// GIVEN a token endpoint that answers what no Cognito should (scopes beyond the request, wrong token type, bad
/// expires_in, empty or oversized tokens, HTML, an oversized body, OAuth errors with text in them, a redirect to
/// another server) THEN every answer is 502 server_error with a fixed description: none of the upstream's text
/// reaches the caller, nothing is retried, a redirect is never followed (the Basic credentials stay where they
/// were sent), and each attempt keeps its charge (the same configuration would fail the same way again).
#[tokio::test]
async fn hostile_upstream_answers_never_reach_the_caller() {
    let h = Harness::start().await;
    let upstream = CannedUpstream::start().await;
    let elsewhere = CannedUpstream::start().await;
    elsewhere.answer(Canned::json(200, r#"{"access_token":"x","token_type":"Bearer","expires_in":60}"#));
    h.store.insert(
        "hostile",
        tb_broker::ClientCredentials::token_endpoint(
            "hostile-client",
            secrecy::SecretString::from("hostile-secret-0123456789"),
            upstream.token_url().parse().unwrap(),
        ),
    );
    const MARK: &str = "UPSTREAM-TEXT-MARK";
    let token =
        |fields: &str| format!(r#"{{"access_token":"{MARK}","token_type":"Bearer","expires_in":3600{fields}}}"#);
    let cases: Vec<(&str, Canned)> = vec![
        ("scope beyond the request", Canned::json(200, &token(r#","scope":"api/read api/write""#))),
        ("scope malformed", Canned::json(200, &token(r#","scope":"api/read  api/write""#))),
        (
            "token type",
            Canned::json(200, &format!(r#"{{"access_token":"{MARK}","token_type":"mac","expires_in":3600}}"#)),
        ),
        (
            "expires_in string",
            Canned::json(200, &format!(r#"{{"access_token":"{MARK}","token_type":"Bearer","expires_in":"3600"}}"#)),
        ),
        (
            "expires_in zero",
            Canned::json(200, &format!(r#"{{"access_token":"{MARK}","token_type":"Bearer","expires_in":0}}"#)),
        ),
        (
            "expires_in negative",
            Canned::json(200, &format!(r#"{{"access_token":"{MARK}","token_type":"Bearer","expires_in":-5}}"#)),
        ),
        ("empty token", Canned::json(200, r#"{"access_token":"","token_type":"Bearer","expires_in":3600}"#)),
        (
            "token of 17 KiB",
            Canned::json(
                200,
                &format!(r#"{{"access_token":"{}","token_type":"Bearer","expires_in":3600}}"#, "a".repeat(17 * 1024)),
            ),
        ),
        ("no token", Canned::json(200, r#"{"token_type":"Bearer","expires_in":3600}"#)),
        (
            "html",
            Canned {
                status: 200,
                headers: vec![("content-type".into(), "text/html".into())],
                body: format!("<html>{MARK}</html>").into_bytes(),
            },
        ),
        ("body over 64 KiB", Canned::json(200, &token(&format!(r#","pad":"{}""#, "p".repeat(70 * 1024))))),
        ("invalid_scope", Canned::json(400, &format!(r#"{{"error":"invalid_scope","error_description":"{MARK}"}}"#))),
        (
            "unauthorized_client",
            Canned::json(400, &format!(r#"{{"error":"unauthorized_client","error_description":"{MARK}"}}"#)),
        ),
        ("invalid_grant", Canned::json(400, &format!(r#"{{"error":"invalid_grant","error_description":"{MARK}"}}"#))),
        ("403", Canned::json(403, &format!(r#"{{"message":"{MARK}"}}"#))),
        (
            "redirect",
            Canned {
                status: 302,
                headers: vec![("location".into(), elsewhere.token_url())],
                body: MARK.as_bytes().to_vec(),
            },
        ),
    ];
    let n = cases.len();
    for (name, canned) in cases {
        upstream.answer(canned);
        let r = h.post("hostile-svc", GRANT).await;
        assert_eq!(r.outcome(), (502, "server_error"), "case {name:?}: {}", r.body);
        assert_error(&r, 502, "server_error");
        assert!(!r.body.contains(MARK), "case {name:?} leaked upstream text: {}", r.body);
    }
    assert_eq!(upstream.requests(), n, "one attempt per request: none of these is retried");
    assert_eq!(elsewhere.requests(), 0, "a redirect is never followed");
    assert_eq!(h.charged("hostile-svc"), n as u64, "an unusable answer is not refunded");
    assert!(!h.broker.upstream.breaker_open(), "a working endpoint answering badly does not open the breaker");

    // A usable token with members a caller must not see: only the four of a token response go out.
    upstream.answer(Canned::json(
        200,
        &token(r#","scope":"api/read","refresh_token":"r","id_token":"i","issued_to":"internal-host.example""#),
    ));
    let r = h.post("hostile-svc", GRANT).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let mut keys: Vec<&String> = r.json.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["access_token", "expires_in", "scope", "token_type"]);
    assert!(!r.body.contains("internal-host"));
}

// ---------------------------------------------------------------- token reuse

/// GIVEN a caller with token reuse on WHEN it asks twice inside the reuse window THEN one upstream call, the same
/// token, and a smaller expires_in the second time.
#[tokio::test]
async fn token_reuse_serves_the_same_token_with_less_life() {
    let h = Harness::start().await;
    let first = h.post("reuse-svc", GRANT).await;
    let second = h.post("reuse-svc", "grant_type=client_credentials&scope=api%2Fread").await;
    assert_eq!((first.status, second.status), (200, 200), "{} {}", first.body, second.body);
    assert_eq!(h.standin.token_requests(), 1);
    assert_eq!(first.token(), second.token());
    assert!(second.expires_in() < first.expires_in(), "{} !< {}", second.expires_in(), first.expires_in());
    assert!(second.expires_in() > 0);
    assert_eq!(second.json["scope"], "api/read");
    assert_no_store(&second);
    assert_eq!(h.metric_total(names::REUSE_HITS), 1.0);
}

/// GIVEN a caller without token reuse (the default) THEN every grant is a fresh upstream call.
#[tokio::test]
async fn without_token_reuse_every_grant_calls_upstream() {
    let h = Harness::start().await;
    let a = h.post("order-svc", GRANT).await;
    let b = h.post("order-svc", GRANT).await;
    assert_eq!((a.status, b.status), (200, 200));
    assert_eq!(h.standin.token_requests(), 2);
    assert_ne!(a.token(), b.token());
}

/// GIVEN token reuse WHEN the cached token is past 75% of its life THEN a new one is fetched.
#[tokio::test]
async fn token_reuse_stops_at_three_quarters_of_life() {
    let h = Harness::start().await;
    // Tokens that live 4 s are served again for 3 s at most.
    h.standin.upsert_client(
        tb_devkit::cognito::StandinClient::new("reusers-client", h.secrets[2].clone(), &["api/read"])
            .token_validity(Duration::from_secs(4)),
    );
    let first = h.post("reuse-svc", GRANT).await;
    assert_eq!(first.expires_in(), 4);
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let second = h.post("reuse-svc", GRANT).await;
    assert_eq!(second.status, 200);
    assert_ne!(first.token(), second.token());
    assert_eq!(h.standin.token_requests(), 2);
}

/// A caller sharing its tokens through the fleet cache needs one configured: without `TOKEN_CACHE_TABLE` the broker
/// does not start (rather than quietly reuse from memory only), and the error names the caller and the variables.
#[tokio::test]
async fn a_fleet_caller_without_a_fleet_cache_stops_the_cold_start() {
    let h = Harness::start().await;
    let mut cfg = h.cfg.clone();
    cfg.token_cache = None;
    let deps = tb_broker::Deps {
        quotas: h.quotas.clone(),
        credentials: h.store.clone(),
        metrics: tb_shared::telemetry::MetricsSink::to_writer("T", h.emf.clone()),
        clock: tb_shared::clock::Clock::system(),
        context_keys: h.context_keys.clone(),
    };
    let e = tb_broker::build(&cfg, deps).await.err().expect("refused").to_string();
    assert!(e.contains("fleet-svc") && e.contains("fleet_token_reuse") && e.contains("TOKEN_CACHE_TABLE"), "{e}");
}
