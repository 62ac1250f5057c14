//! The Cognito token-endpoint stand-in over real loopback HTTP(S), driven with reqwest the way the broker drives it.

mod common;
use common::*;
#[tokio::test]
async fn basic_auth_issues_a_cognito_shaped_token_that_verifies_against_the_served_jwks() {
    let s = start().await;
    let resp = basic_request(&s, ORDER_ID, ORDER_SECRET, Some("customer-api/read customer-api/write")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["cache-control"], "no-cache, no-store, max-age=0, must-revalidate");
    assert_eq!(resp.headers()["pragma"], "no-cache");
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    let body: Value = resp.json().await.unwrap();

    // Exactly Cognito's client_credentials response members: no scope, no refresh or id token.
    let mut members: Vec<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
    members.sort_unstable();
    assert_eq!(members, ["access_token", "expires_in", "token_type"]);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    let token = body["access_token"].as_str().unwrap();

    // Header like Cognito's: RS256 with a kid that the JWKS publishes.
    let header = decode_part(token, 0);
    assert_eq!(header["alg"], "RS256");
    assert!(header.get("typ").is_none());
    let jwks = fetch_jwks(&s.jwks_url()).await;
    let kid = header["kid"].as_str().unwrap();
    assert!(jwks.find(kid).is_some());
    assert_eq!(kid, s.current_kid());

    // The served JWKS (fetched over HTTP, as a resource server would) verifies the token.
    assert_eq!(s.issuer(), format!("{}/us-east-1_devpool", s.base_url()));
    assert!(s.jwks_url().starts_with(&s.issuer()));
    let claims = verify_access_token_with_jwks(&jwks, &s.issuer(), token).unwrap();
    assert_eq!(claims.sub, ORDER_ID);
    assert_eq!(claims.client_id, ORDER_ID);
    assert_eq!(claims.token_use, "access");
    assert_eq!(claims.scope, "customer-api/read customer-api/write");
    assert_eq!(claims.iss, s.issuer());
    assert_eq!(claims.version, 2);
    assert_eq!(claims.exp - claims.iat, 3600);
    assert_eq!(claims.auth_time, claims.iat);
    let jti = claims.jti.as_bytes();
    assert_eq!(jti.len(), 36);
    assert!([8, 13, 18, 23].iter().all(|&i| jti[i] == b'-'));

    // Exactly Cognito's M2M claim set, in Cognito's order; in particular no aud.
    let cognito_order = ["sub", "token_use", "scope", "auth_time", "iss", "exp", "iat", "version", "jti", "client_id"];
    let payload = decode_part(token, 1);
    let mut names: Vec<&str> = payload.as_object().unwrap().keys().map(String::as_str).collect();
    names.sort_unstable();
    let mut expected = cognito_order.to_vec();
    expected.sort_unstable();
    assert_eq!(names, expected);
    let raw = String::from_utf8(
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token.split('.').nth(1).unwrap()).unwrap(),
    )
    .unwrap();
    let positions: Vec<usize> = cognito_order.iter().map(|n| raw.find(&format!("\"{n}\":")).unwrap()).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "claims out of Cognito's order: {positions:?}");

    // The JWKS is also at the host root, and the discovery document points at both endpoints.
    let root_jwks = fetch_jwks(&format!("{}/.well-known/jwks.json", s.base_url())).await;
    assert_eq!(root_jwks, jwks);
    let disco: Value = http()
        .get(format!("{}/.well-known/openid-configuration", s.issuer()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(disco["issuer"], s.issuer());
    assert_eq!(disco["jwks_uri"], s.jwks_url());
    assert_eq!(disco["token_endpoint"], s.token_url());
    s.shutdown().await;
}

#[tokio::test]
async fn body_authentication_succeeds() {
    let s = start().await;
    let resp = raw_request(
        &s,
        None,
        &format!("grant_type=client_credentials&client_id={REPORT_ID}&client_secret={REPORT_SECRET}&scope=customer-api%2Fread"),
    )
    .await;
    let (status, body) = status_and_json(resp).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let claims = s.verify_access_token(body["access_token"].as_str().unwrap()).unwrap();
    assert_eq!(claims.client_id, REPORT_ID);
    assert_eq!(claims.scopes(), ["customer-api/read"]);
    s.shutdown().await;
}

#[tokio::test]
async fn basic_with_a_matching_body_client_id_succeeds_as_in_cognitos_samples() {
    let s = start().await;
    let resp =
        raw_request(&s, Some((ORDER_ID, ORDER_SECRET)), &format!("grant_type=client_credentials&client_id={ORDER_ID}"))
            .await;
    assert_eq!(resp.status(), StatusCode::OK);
    s.shutdown().await;
}

#[tokio::test]
async fn basic_credentials_are_form_urlencoded_per_rfc6749() {
    // ':' separates id from secret in Basic, so it cannot be part of a client id (Cognito's ids are alphanumeric).
    let err = CognitoStandin::start(StandinConfig::new(vec![StandinClient::new("odd:client", "x", &["a/b"])]))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);

    let secret = "s3cr+t with/specials%";
    let s = CognitoStandin::start(StandinConfig::new(vec![StandinClient::new("odd client", secret, &["a/b"])]))
        .await
        .unwrap();
    let enc = |v: &str| form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", enc("odd client"), enc(secret)));
    let resp = http()
        .post(s.token_url())
        .header("authorization", format!("Basic {basic}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    s.shutdown().await;
}

#[tokio::test]
async fn missing_scope_grants_every_allowed_scope() {
    let s = start().await;
    let body: Value = basic_request(&s, ORDER_ID, ORDER_SECRET, None).await.json().await.unwrap();
    let claims = s.verify_access_token(body["access_token"].as_str().unwrap()).unwrap();
    assert_eq!(claims.scope, ALL);

    // An empty scope parameter is treated as absent.
    let body: Value = basic_request(&s, REPORT_ID, REPORT_SECRET, Some("")).await.json().await.unwrap();
    let claims = s.verify_access_token(body["access_token"].as_str().unwrap()).unwrap();
    assert_eq!(claims.scope, "customer-api/read");
    s.shutdown().await;
}

#[tokio::test]
async fn client_authentication_failures() {
    let s = start().await;
    let bad = StatusCode::BAD_REQUEST;
    // Wrong secret, unknown client, another client's secret.
    expect_error(basic_request(&s, ORDER_ID, "wrong", None).await, bad, "invalid_client").await;
    expect_error(basic_request(&s, "nosuchclient", ORDER_SECRET, None).await, bad, "invalid_client").await;
    expect_error(basic_request(&s, REPORT_ID, ORDER_SECRET, None).await, bad, "invalid_client").await;
    // Wrong secret in the body.
    let body = format!("grant_type=client_credentials&client_id={ORDER_ID}&client_secret=wrong");
    expect_error(raw_request(&s, None, &body).await, bad, "invalid_client").await;
    // No credentials at all, or a client id without its secret.
    expect_error(raw_request(&s, None, "grant_type=client_credentials").await, bad, "invalid_client").await;
    let body = format!("grant_type=client_credentials&client_id={ORDER_ID}");
    expect_error(raw_request(&s, None, &body).await, bad, "invalid_client").await;
    // Two authentication methods at once (RFC 6749 §2.3).
    let body = format!("grant_type=client_credentials&client_id={ORDER_ID}&client_secret={ORDER_SECRET}");
    expect_error(raw_request(&s, Some((ORDER_ID, ORDER_SECRET)), &body).await, bad, "invalid_request").await;
    // Basic for one client, body client_id naming another.
    let body = format!("grant_type=client_credentials&client_id={REPORT_ID}");
    expect_error(raw_request(&s, Some((ORDER_ID, ORDER_SECRET)), &body).await, bad, "invalid_client").await;
    // A malformed or non-Basic Authorization header.
    let resp = http()
        .post(s.token_url())
        .header("authorization", "Basic not-base64!")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    expect_error(resp, bad, "invalid_client").await;
    let resp = http()
        .post(s.token_url())
        .bearer_auth("abc")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    expect_error(resp, bad, "invalid_client").await;
    assert_eq!(s.tokens_issued(), 0);
    s.shutdown().await;
}

#[tokio::test]
async fn invalid_client_can_be_configured_to_answer_401() {
    let mut cfg = example_pool_config();
    cfg.invalid_client_status = 401;
    let s = CognitoStandin::start(cfg).await.unwrap();
    expect_error(basic_request(&s, ORDER_ID, "wrong", None).await, StatusCode::UNAUTHORIZED, "invalid_client").await;
    // Other errors stay 400.
    expect_error(
        basic_request(&s, REPORT_ID, REPORT_SECRET, Some("customer-api/admin")).await,
        StatusCode::BAD_REQUEST,
        "invalid_scope",
    )
    .await;
    s.shutdown().await;

    let mut cfg = example_pool_config();
    cfg.invalid_client_status = 403;
    assert_eq!(CognitoStandin::start(cfg).await.unwrap_err().kind(), std::io::ErrorKind::InvalidInput);
}

#[tokio::test]
async fn scope_not_allowed_or_malformed_is_invalid_scope() {
    let s = start().await;
    let bad = StatusCode::BAD_REQUEST;
    expect_error(basic_request(&s, REPORT_ID, REPORT_SECRET, Some("customer-api/write")).await, bad, "invalid_scope")
        .await;
    // One disallowed scope among allowed ones still fails the whole request.
    expect_error(
        basic_request(&s, REPORT_ID, REPORT_SECRET, Some("customer-api/read customer-api/admin")).await,
        bad,
        "invalid_scope",
    )
    .await;
    expect_error(basic_request(&s, ORDER_ID, ORDER_SECRET, Some("customer-api/\"read")).await, bad, "invalid_scope")
        .await;
    // A client with no custom scopes cannot get a client_credentials token.
    s.upsert_client(StandinClient::new("noscopes", "secret", &[]));
    expect_error(basic_request(&s, "noscopes", "secret", None).await, bad, "invalid_scope").await;
    s.shutdown().await;
}

#[tokio::test]
async fn grant_type_errors() {
    let s = start().await;
    let bad = StatusCode::BAD_REQUEST;
    let order = Some((ORDER_ID, ORDER_SECRET));
    expect_error(raw_request(&s, order, "grant_type=password").await, bad, "unsupported_grant_type").await;
    expect_error(raw_request(&s, order, "scope=customer-api%2Fread").await, bad, "invalid_request").await;
    expect_error(raw_request(&s, order, "grant_type=").await, bad, "invalid_request").await;
    // Grants Cognito knows but an M2M client is not allowed.
    expect_error(raw_request(&s, order, "grant_type=authorization_code&code=x").await, bad, "unauthorized_client")
        .await;
    expect_error(raw_request(&s, order, "grant_type=refresh_token&refresh_token=x").await, bad, "unauthorized_client")
        .await;
    // A repeated parameter.
    expect_error(
        raw_request(&s, order, "grant_type=client_credentials&scope=customer-api%2Fread&scope=customer-api%2Fwrite")
            .await,
        bad,
        "invalid_request",
    )
    .await;
    // A client whose client_credentials flow is switched off.
    let mut disabled = StandinClient::new("disabled", "secret", &["customer-api/read"]);
    disabled.client_credentials_enabled = false;
    s.upsert_client(disabled);
    expect_error(
        raw_request(&s, Some(("disabled", "secret")), "grant_type=client_credentials").await,
        bad,
        "unauthorized_client",
    )
    .await;
    assert_eq!(s.tokens_issued(), 0);
    s.shutdown().await;
}

#[tokio::test]
async fn wrong_content_type_or_method_gets_405() {
    let s = start().await;
    let resp = http()
        .post(s.token_url())
        .basic_auth(ORDER_ID, Some(ORDER_SECRET))
        .header("content-type", "application/json")
        .body(r#"{"grant_type":"client_credentials"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    let resp = http()
        .post(s.token_url())
        .basic_auth(ORDER_ID, Some(ORDER_SECRET))
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    let resp = http().get(s.token_url()).basic_auth(ORDER_ID, Some(ORDER_SECRET)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    // A charset parameter on the right media type is fine.
    let resp = http()
        .post(s.token_url())
        .basic_auth(ORDER_ID, Some(ORDER_SECRET))
        .header("content-type", "Application/X-WWW-Form-Urlencoded; charset=UTF-8")
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    s.shutdown().await;
}

#[tokio::test]
async fn delay_fault_holds_answers_until_cleared() {
    let s = start().await;
    s.faults().set_delay(Duration::from_millis(400));
    let t = Instant::now();
    assert_eq!(basic_request(&s, ORDER_ID, ORDER_SECRET, None).await.status(), StatusCode::OK);
    assert!(t.elapsed() >= Duration::from_millis(400), "answered after {:?}", t.elapsed());

    // A caller's own timeout fires first, which is what the broker's timeout tests rely on.
    s.faults().set_delay(Duration::from_secs(3));
    let short = reqwest::Client::builder().timeout(Duration::from_millis(200)).build().unwrap();
    let err = short
        .post(s.token_url())
        .basic_auth(ORDER_ID, Some(ORDER_SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout());

    s.faults().clear();
    assert_eq!(s.faults().delay(), Duration::ZERO);
    let t = Instant::now();
    assert_eq!(basic_request(&s, ORDER_ID, ORDER_SECRET, None).await.status(), StatusCode::OK);
    assert!(t.elapsed() < Duration::from_secs(3), "answered after {:?}", t.elapsed());
    s.shutdown().await;
}

#[tokio::test]
async fn server_error_faults() {
    let s = start().await;
    s.faults().fail_next(2, 503);
    for _ in 0..2 {
        let (status, body) = status_and_json(basic_request(&s, ORDER_ID, ORDER_SECRET, None).await).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["error"], "server_error");
    }
    assert_eq!(basic_request(&s, ORDER_ID, ORDER_SECRET, None).await.status(), StatusCode::OK);

    s.faults().fail_all(500);
    for _ in 0..3 {
        assert_eq!(basic_request(&s, ORDER_ID, ORDER_SECRET, None).await.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
    // Faults hit the token endpoint only: the JWKS still answers.
    assert!(!fetch_jwks(&s.jwks_url()).await.keys.is_empty());
    s.faults().clear();
    assert_eq!(basic_request(&s, ORDER_ID, ORDER_SECRET, None).await.status(), StatusCode::OK);
    s.shutdown().await;
}

#[tokio::test]
async fn throttling_faults_in_both_shapes() {
    let s = start().await;
    s.faults().throttle_next(1, ThrottleStyle::CognitoBadRequest);
    let (status, body) = status_and_json(basic_request(&s, ORDER_ID, ORDER_SECRET, None).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["__type"], "TooManyRequestsException");
    assert_eq!(body["message"], "Rate exceeded");
    assert_eq!(basic_request(&s, ORDER_ID, ORDER_SECRET, None).await.status(), StatusCode::OK);

    s.faults().throttle_all(ThrottleStyle::TooManyRequests);
    for _ in 0..2 {
        let resp = basic_request(&s, ORDER_ID, ORDER_SECRET, None).await;
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()["retry-after"], "1");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["__type"], "TooManyRequestsException");
    }
    s.faults().clear();
    assert_eq!(basic_request(&s, ORDER_ID, ORDER_SECRET, None).await.status(), StatusCode::OK);
    s.shutdown().await;
}

#[tokio::test]
async fn rotated_secret_invalidates_the_old_one() {
    let s = start().await;
    let new_secret = s.rotate_secret(ORDER_ID).unwrap();
    assert_ne!(new_secret, ORDER_SECRET);
    assert_eq!(new_secret.len(), 51);
    expect_error(basic_request(&s, ORDER_ID, ORDER_SECRET, None).await, StatusCode::BAD_REQUEST, "invalid_client")
        .await;
    assert_eq!(basic_request(&s, ORDER_ID, &new_secret, None).await.status(), StatusCode::OK);
    // The other client is untouched.
    assert_eq!(basic_request(&s, REPORT_ID, REPORT_SECRET, None).await.status(), StatusCode::OK);
    assert!(s.rotate_secret("nosuchclient").is_none());

    // A chosen value, for a test that must store it elsewhere first.
    assert!(s.set_secret(ORDER_ID, "chosen"));
    expect_error(basic_request(&s, ORDER_ID, &new_secret, None).await, StatusCode::BAD_REQUEST, "invalid_client").await;
    assert_eq!(basic_request(&s, ORDER_ID, "chosen", None).await.status(), StatusCode::OK);
    s.shutdown().await;
}

#[tokio::test]
async fn counters_count_every_token_request() {
    let s = start().await;
    assert_eq!((s.token_requests(), s.tokens_issued()), (0, 0));
    basic_request(&s, ORDER_ID, ORDER_SECRET, None).await;
    basic_request(&s, ORDER_ID, "wrong", None).await;
    basic_request(&s, REPORT_ID, REPORT_SECRET, None).await;
    raw_request(&s, None, &format!("grant_type=client_credentials&client_id={REPORT_ID}&client_secret=x")).await;
    // Fault-answered requests count too: they reached "Cognito".
    s.faults().fail_next(1, 500);
    basic_request(&s, ORDER_ID, ORDER_SECRET, None).await;
    // Unknown ids count in the total only.
    basic_request(&s, "nosuchclient", "x", None).await;
    // The JWKS is not a token request.
    fetch_jwks(&s.jwks_url()).await;

    assert_eq!(s.token_requests(), 6);
    assert_eq!(s.token_requests_for(ORDER_ID), 3);
    assert_eq!(s.token_requests_for(REPORT_ID), 2);
    assert_eq!(s.token_requests_for("nosuchclient"), 0);
    assert_eq!(s.tokens_issued(), 2);

    s.reset_counters();
    assert_eq!((s.token_requests(), s.tokens_issued(), s.token_requests_for(ORDER_ID)), (0, 0, 0));
    s.shutdown().await;
}

#[tokio::test]
async fn verification_rejects_tampered_foreign_wrong_issuer_and_expired_tokens() {
    let mut cfg = example_pool_config();
    cfg.clients.push(
        // 3 s, not 1: `iat` is truncated to the second, so a 1 s token can be left with a tenth of a second to live.
        StandinClient::new("shortlived", "secret", &["customer-api/read"]).token_validity(Duration::from_secs(3)),
    );
    let s = CognitoStandin::start(cfg).await.unwrap();
    let other = start().await;
    let token_from = |body: Value| body["access_token"].as_str().unwrap().to_owned();
    let token = token_from(basic_request(&s, ORDER_ID, ORDER_SECRET, None).await.json().await.unwrap());
    let foreign = token_from(basic_request(&other, ORDER_ID, ORDER_SECRET, None).await.json().await.unwrap());

    // Payload changed after signing (scope widened).
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut payload = decode_part(&token, 1);
    payload["scope"] = Value::String("customer-api/admin everything".into());
    parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(payload.to_string());
    assert_eq!(s.verify_access_token(&parts.join(".")), Err(VerifyError::BadSignature));

    assert_eq!(s.verify_access_token(&foreign), Err(VerifyError::UnknownKey));
    assert_eq!(
        verify_access_token_with_jwks(&s.jwks(), "https://elsewhere/pool", &token),
        Err(VerifyError::WrongIssuer)
    );
    assert_eq!(s.verify_access_token("not.a.jwt"), Err(VerifyError::Malformed));
    assert!(s.verify_access_token(&token).is_ok());

    let short = token_from(basic_request(&s, "shortlived", "secret", None).await.json().await.unwrap());
    let claims = s.verify_access_token(&short).unwrap();
    assert_eq!(claims.exp - claims.iat, 3);
    tokio::time::sleep(Duration::from_millis(4100)).await;
    assert_eq!(s.verify_access_token(&short), Err(VerifyError::Expired));
    s.shutdown().await;
    other.shutdown().await;
}

#[tokio::test]
async fn signing_key_rotation_keeps_old_tokens_verifiable() {
    let s = start().await;
    let old_kid = s.current_kid();
    let body: Value = basic_request(&s, ORDER_ID, ORDER_SECRET, None).await.json().await.unwrap();
    let old_token = body["access_token"].as_str().unwrap().to_owned();

    let new_kid = s.rotate_signing_key().await.unwrap();
    assert_ne!(new_kid, old_kid);
    let jwks = fetch_jwks(&s.jwks_url()).await;
    assert_eq!(jwks.keys.len(), 2);
    assert!(verify_access_token_with_jwks(&jwks, &s.issuer(), &old_token).is_ok());

    let body: Value = basic_request(&s, ORDER_ID, ORDER_SECRET, None).await.json().await.unwrap();
    let new_token = body["access_token"].as_str().unwrap();
    assert_eq!(decode_part(new_token, 0)["kid"], new_kid.as_str());
    assert!(verify_access_token_with_jwks(&jwks, &s.issuer(), new_token).is_ok());
    s.shutdown().await;
}

#[tokio::test]
async fn https_with_a_self_signed_certificate() {
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
    let cert_der = ck.cert.der().clone();
    let key_der = rustls_pki_types::PrivateKeyDer::try_from(ck.signing_key.serialize_der()).unwrap();
    let tls = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert_der], key_der)
        .unwrap();
    let s = CognitoStandin::start_tls(example_pool_config(), Arc::new(tls)).await.unwrap();
    assert!(s.token_url().starts_with("https://127.0.0.1:"));
    assert!(s.issuer().starts_with("https://127.0.0.1:"));

    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ck.cert.pem().as_bytes()).unwrap()])
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let resp = client
        .post(s.token_url())
        .basic_auth(ORDER_ID, Some(ORDER_SECRET))
        .form(&[("grant_type", "client_credentials"), ("scope", "customer-api/admin")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    let jwks: JwkSet = client.get(s.jwks_url()).send().await.unwrap().json().await.unwrap();
    let claims = verify_access_token_with_jwks(&jwks, &s.issuer(), body["access_token"].as_str().unwrap()).unwrap();
    assert_eq!(claims.scope, "customer-api/admin");

    // A client that does not trust the certificate cannot connect.
    let untrusting = reqwest::Client::builder().tls_certs_only(Vec::<reqwest::Certificate>::new()).build().unwrap();
    assert!(untrusting.post(s.token_url()).send().await.is_err());
    s.shutdown().await;
}

#[tokio::test]
async fn admin_routes_are_off_by_default_and_drive_faults_when_on() {
    let s = start().await;
    let resp = http().get(format!("{}/_devkit/stats", s.base_url())).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    s.shutdown().await;

    let mut cfg = example_pool_config();
    cfg.admin_routes = true;
    let s = CognitoStandin::start(cfg).await.unwrap();
    let admin = |path: &str| format!("{}/_devkit/{path}", s.base_url());
    let resp = http()
        .post(admin("faults"))
        .json(&serde_json::json!({ "fail_next": { "count": 1, "status": 502 } }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(basic_request(&s, ORDER_ID, ORDER_SECRET, None).await.status(), StatusCode::BAD_GATEWAY);
    let resp = http().post(admin("faults")).json(&serde_json::json!({ "fail_all": 404 })).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let resp = http().post(admin("faults")).json(&serde_json::json!({ "bogus": 1 })).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);

    let rotated: Value =
        http().post(admin(&format!("clients/{REPORT_ID}/rotate-secret"))).send().await.unwrap().json().await.unwrap();
    let new_secret = rotated["client_secret"].as_str().unwrap();
    assert_eq!(basic_request(&s, REPORT_ID, new_secret, None).await.status(), StatusCode::OK);
    let resp = http().post(admin("clients/nosuch/rotate-secret")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);

    let stats: Value = http().get(admin("stats")).send().await.unwrap().json().await.unwrap();
    assert_eq!(stats["token_requests"], 2);
    assert_eq!(stats["tokens_issued"], 1);
    assert_eq!(stats["per_client"][ORDER_ID], 1);
    assert_eq!(stats["per_client"][REPORT_ID], 1);
    s.shutdown().await;
}

#[tokio::test]
async fn debug_output_hides_secrets() {
    let cfg = example_pool_config();
    let printed = format!("{cfg:?} {:?}", cfg.clients[0]);
    assert!(printed.contains(ORDER_ID));
    assert!(!printed.contains(ORDER_SECRET));
    assert!(!printed.contains(REPORT_SECRET));
    let s = CognitoStandin::start(cfg).await.unwrap();
    let rotated = s.rotate_secret(ORDER_ID).unwrap();
    let printed = format!("{s:?} {:?}", s.faults());
    assert!(!printed.contains(&rotated));
    assert!(!printed.contains(REPORT_SECRET));
    s.shutdown().await;
}

#[tokio::test]
async fn binds_loopback_and_stops_on_shutdown() {
    let s = start().await;
    assert!(s.local_addr().ip().is_loopback());
    assert_ne!(s.local_addr().port(), 0);
    let url = s.token_url();
    assert_eq!(basic_request(&s, ORDER_ID, ORDER_SECRET, None).await.status(), StatusCode::OK);
    s.shutdown().await;
    let err = reqwest::Client::new().post(&url).form(&[("grant_type", "client_credentials")]).send().await;
    assert!(err.is_err(), "server still answering after shutdown");
}
