//! Handler-level tests: real-shaped REQUEST events in, API Gateway's answer out, with a test PKI made at run time.
//! GIVEN a policy and trust material WHEN an event arrives THEN the answer is exactly what API Gateway expects.

mod common;
use base64::Engine as _;
use common::*;

#[test]
fn fixtures_parse_with_and_without_client_cert() {
    let e = mtls_event("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
    let cert = e.request_context.identity.as_ref().unwrap().client_cert.as_ref().unwrap();
    assert!(cert.client_cert_pem.as_deref().unwrap().starts_with("-----BEGIN CERTIFICATE-----\n"));
    assert_eq!(cert.serial_number.as_deref(), Some("4e:1a:00:9c"));
    let j: RequestEvent = serde_json::from_str(JWT_EVENT).unwrap();
    assert!(j.request_context.identity.as_ref().unwrap().client_cert.is_none());
    assert_eq!(j.headers.get("authorization").unwrap(), "Bearer __TOKEN__");
    assert_eq!(
        j.method_arn.as_deref(),
        Some("arn:aws:execute-api:eu-west-1:123456789012:a1b2c3d4e5/prod/POST/oauth2/token")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn each_match_rule_yields_its_caller_and_context() {
    let w = world();
    for name in ["order-processing", "reporting", "legacy-batch", "pinned", "spki-pinned"] {
        let v = answer(&w, &mtls_event(&w.cert(name).pem)).await.unwrap_or_else(|_| panic!("{name} refused"));
        assert_eq!(v["principalId"], name);
        assert_eq!(v["policyDocument"]["Statement"][0]["Effect"], "Allow");
        assert_eq!(v["context"]["callerId"], name);
        assert_eq!(v["context"]["authMethod"], "mtls");
        assert_eq!(v["context"]["policyVersion"], w.app.authorizer.policy().version.as_str());
        let fp = v["context"]["credentialFingerprint"].as_str().unwrap();
        // The certificate's RFC 8705 thumbprint: base64url of the whole SHA-256 of its DER.
        let sha = hex::decode(w.cert(name).cert_sha256_hex()).unwrap();
        assert_eq!(fp, base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha));
        for (_, val) in v["context"].as_object().unwrap() {
            assert!(val.is_string(), "context values must be flat strings");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn usage_identifier_key_only_when_the_caller_has_one() {
    let w = world();
    let v = answer(&w, &mtls_event(&w.cert("reporting").pem)).await.unwrap();
    assert_eq!(v["usageIdentifierKey"], "reporting-usage-plan-key-0001");
    let v = answer(&w, &mtls_event(&w.cert("order-processing").pem)).await.unwrap();
    assert!(v.get("usageIdentifierKey").is_none(), "absent, not null: {v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_answer_reused_for_another_stage_still_allows_only_the_token_method() {
    let w = world();
    let v = answer(&w, &mtls_event(&w.cert("order-processing").pem)).await.unwrap();
    let resource = v["policyDocument"]["Statement"][0]["Resource"][0].as_str().unwrap();
    let api = "arn:aws:execute-api:eu-west-1:123456789012:a1b2c3d4e5";
    assert!(arn_matches(resource, &format!("{api}/prod/POST/oauth2/token")));
    assert!(arn_matches(resource, &format!("{api}/staging/POST/oauth2/token")));
    assert!(!arn_matches(resource, &format!("{api}/prod/GET/oauth2/token")));
    assert!(!arn_matches(resource, &format!("{api}/prod/POST/admin")));
    assert!(!arn_matches(resource, "arn:aws:execute-api:eu-west-1:123456789012:otherapi/prod/POST/oauth2/token"));
    // The same credential arriving through another stage gets the same (cached) answer.
    let again =
        answer(&w, &event_with_arn(&w.cert("order-processing").pem, &format!("{api}/staging/POST/oauth2/token")))
            .await
            .unwrap();
    assert_eq!(again["policyDocument"], v["policyDocument"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn handler_json_is_what_api_gateway_expects() {
    let w = world();
    let allow = answer(&w, &mtls_event(&w.cert("reporting").pem)).await.unwrap();
    insta::assert_json_snapshot!("allow_mtls", allow, {
        ".context.credentialFingerprint" => "[fingerprint]",
        ".context.policyVersion" => "[policy-version]",
        ".context.contextMac" => "[mac]",
        ".context.contextMacExpires" => "[expires]",
    });
    let deny = answer(&w, &mtls_event(&w.cert("stranger").pem)).await.unwrap();
    insta::assert_json_snapshot!("deny_unknown_caller", deny);
}

#[tokio::test(flavor = "multi_thread")]
async fn known_credential_of_unknown_or_disabled_caller_is_denied() {
    let w = world();
    for name in ["stranger", "retired"] {
        let v = answer(&w, &mtls_event(&w.cert(name).pem)).await.unwrap();
        assert_eq!(v["policyDocument"]["Statement"][0]["Effect"], "Deny", "{name}");
        assert!(v.get("context").is_none());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_or_invalid_credentials_are_unauthorized() {
    let w = world();
    let mut e = mtls_event("x");
    e.request_context.identity.as_mut().unwrap().client_cert = None;
    assert_eq!(answer(&w, &e).await, Err(Unauthorized));
    assert_eq!(answer(&w, &mtls_event("not a pem")).await, Err(Unauthorized));
    let other_ca = TestCa::root("Dev Root CA").unwrap();
    let now = SystemTime::now();
    let foreign = other_ca
        .issue_client()
        .san_uri("spiffe://example.internal/order-processing")
        .validity(now - hours(1), now + hours(1))
        .build()
        .unwrap();
    assert_eq!(answer(&w, &mtls_event(&foreign.pem)).await, Err(Unauthorized));
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_authorization_headers_are_unauthorized() {
    let w = world();
    for header in ["Basic Zm9vOmJhcg==", "Bearer", "Bearer ", "Bearer a b", "bearer"] {
        let json = JWT_EVENT.replace("Bearer __TOKEN__", header);
        let e: RequestEvent = serde_json::from_str(&json).unwrap();
        assert_eq!(answer(&w, &e).await, Err(Unauthorized), "{header}");
    }
}

/// The REQUEST event of a partner request that carried two Authorization headers, as API Gateway (REST) builds it:
/// `headers` holds one value per name (the last one), `multiValueHeaders` every value in order.
fn two_authorization_headers(first: &str, second: &str) -> RequestEvent {
    let mut e: Value = tb_devkit::events::authorizer_jwt(second);
    e["multiValueHeaders"]["Authorization"] =
        serde_json::json!([format!("Bearer {first}"), format!("Bearer {second}")]);
    serde_json::from_value(e).unwrap()
}

/// Two Authorization headers are refused rather than one picked, whichever of them is valid: API Gateway hands the
/// authorizer the last one in `headers`, and all of them in `multiValueHeaders`.
#[tokio::test(flavor = "multi_thread")]
async fn two_authorization_headers_are_unauthorized_whichever_is_valid() {
    let w = world();
    let good = w.partner_token("acme-billing-sync");
    let e = two_authorization_headers("other", &good);
    assert_eq!(e.headers.get_all("authorization").iter().count(), 1, "headers keeps one value");
    assert_eq!(answer(&w, &e).await, Err(Unauthorized), "the valid token last");
    assert_eq!(
        answer(&w, &two_authorization_headers(&good, "other")).await,
        Err(Unauthorized),
        "the valid token first"
    );
    assert_eq!(answer(&w, &two_authorization_headers(&good, &good)).await, Err(Unauthorized), "the same token twice");
    // One Authorization header, as both maps carry it: the token is used.
    let one = answer(&w, &jwt_event(&good)).await.unwrap();
    assert_eq!(one["principalId"], "partner-acme");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_method_arn_is_refused() {
    let w = world();
    let e = event_with_arn(&w.cert("order-processing").pem, "arn:aws:lambda:eu-west-1:123456789012:function:x");
    assert_eq!(answer(&w, &e).await, Err(Unauthorized));
}

#[tokio::test(flavor = "multi_thread")]
async fn second_decision_comes_from_the_cache_and_a_crl_update_clears_it() {
    let w = world();
    let pem = w.cert("order-processing").pem.clone();
    let now = SystemTime::now();
    let (first, info) = w.app.authorizer.decide(Presented { client_cert_pem: Some(&pem), bearer: None }, now).await;
    assert!(!info.cache_hit);
    let (second, info) = w.app.authorizer.decide(Presented { client_cert_pem: Some(&pem), bearer: None }, now).await;
    assert!(info.cache_hit);
    assert_eq!(first, second);

    // The operator revokes the certificate: after the refresh the cached Allow is gone and the answer is Deny.
    let crl = w.ca.crl(&[&w.cert("order-processing").serial], now - hours(1), now + hours(1)).unwrap();
    w.crls.set(crl.pem.into_bytes());
    let v = answer(&w, &mtls_event(&pem)).await.unwrap();
    assert_eq!(v["policyDocument"]["Statement"][0]["Effect"], "Deny");
    assert!(w.trust.fetches() >= 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn partner_jwt_yields_its_caller() {
    let w = world();
    let v = answer(&w, &jwt_event(&w.partner_token("acme-billing-sync"))).await.unwrap();
    assert_eq!(v["principalId"], "partner-acme");
    assert_eq!(v["context"]["authMethod"], "jwt");
    assert_eq!(v["policyDocument"]["Statement"][0]["Effect"], "Allow");
    insta::assert_json_snapshot!("allow_jwt", v, {
        ".context.credentialFingerprint" => "[fingerprint]",
        ".context.policyVersion" => "[policy-version]",
        ".context.contextMac" => "[mac]",
        ".context.contextMacExpires" => "[expires]",
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn valid_jwt_of_an_unregistered_subject_is_denied_and_a_forged_one_unauthorized() {
    let w = world();
    let v = answer(&w, &jwt_event(&w.partner_token("someone-else"))).await.unwrap();
    assert_eq!(v["policyDocument"]["Statement"][0]["Effect"], "Deny");
    let stranger = PartnerKey::ec_p256("acme-1").unwrap();
    let forged =
        stranger.token(&standard_claims("https://idp.acme.example", "acme-billing-sync", "token-broker")).unwrap();
    assert_eq!(answer(&w, &jwt_event(&forged)).await, Err(Unauthorized));
}

#[tokio::test(flavor = "multi_thread")]
async fn certificate_and_jwt_of_different_callers_are_denied() {
    let w = world();
    let token = w.partner_token("acme-billing-sync");
    let mut e = jwt_event(&token);
    let mtls = mtls_event(&w.cert("order-processing").pem);
    e.request_context.identity = mtls.request_context.identity.clone();
    let v = answer(&w, &e).await.unwrap();
    assert_eq!(v["policyDocument"]["Statement"][0]["Effect"], "Deny");
    // An invalid JWT next to a valid certificate is still Unauthorized: every credential presented must verify.
    let mut e = jwt_event("eyJhbGciOiJub25lIn0.e30.");
    e.request_context.identity = mtls.request_context.identity;
    assert_eq!(answer(&w, &e).await, Err(Unauthorized));
}

/// A partner-signed token whose `exp` (or another time) is a number no clock can hold is refused with 401, never a
/// panic: 2^63, u64::MAX and 10^15 seconds.
#[tokio::test(flavor = "multi_thread")]
async fn a_signed_token_with_an_out_of_range_time_is_unauthorized_not_a_panic() {
    let w = world();
    for claim in ["exp", "iat", "nbf"] {
        for value in
            [serde_json::json!(1u64 << 63), serde_json::json!(u64::MAX), serde_json::json!(1_000_000_000_000_000u64)]
        {
            let mut claims = standard_claims("https://idp.acme.example", "acme-billing-sync", "token-broker");
            claims[claim] = value.clone();
            let token = w.partner.token(&claims).unwrap();
            let answer = answer(&w, &jwt_event(&token)).await;
            assert!(answer.is_err(), "{claim} = {value}: {answer:?}");
        }
    }
}

/// An outage of the authorizer's own dependencies is an `AuthorizerErrors` with its reason (the alarm's metric); an
/// ordinary refusal of bad or missing credentials is not, although both are the same 401 to the caller.
#[tokio::test(flavor = "multi_thread")]
async fn partner_keys_unavailable_is_an_authorizer_error_and_bad_credentials_are_not() {
    let w = world();
    let forged = PartnerKey::ec_p256("acme-1")
        .unwrap()
        .token(&standard_claims("https://idp.acme.example", "acme-billing-sync", "token-broker"))
        .unwrap();
    let now = SystemTime::now();
    let expired = w.ca.issue_client().cn("order-processing").san_uri("spiffe://example.internal/order-processing");
    let expired = expired.validity(now - hours(48), now - hours(24)).build().unwrap();
    let foreign = TestCa::root("Dev Root CA").unwrap().issue_client().cn("order-processing").build().unwrap();

    let mut no_credentials = mtls_event("x");
    no_credentials.request_context.identity.as_mut().unwrap().client_cert = None;
    let bad: Vec<(&str, RequestEvent)> = vec![
        ("no credentials", no_credentials),
        ("bad signature", jwt_event(&forged)),
        ("not a JWT", jwt_event("not-a-token")),
        (
            "malformed Authorization",
            serde_json::from_str(&JWT_EVENT.replace("Bearer __TOKEN__", "Basic eA==")).unwrap(),
        ),
        ("expired certificate", mtls_event(&expired.pem)),
        ("foreign certificate", mtls_event(&foreign.pem)),
        ("not a PEM", mtls_event("not a pem")),
    ];
    for (what, e) in &bad {
        assert_eq!(answer(&w, e).await, Err(Unauthorized), "{what}");
    }
    assert_eq!(authorizer_errors(&w.metrics), Vec::<String>::new(), "bad credentials are not authorizer errors");
    assert!(w.metrics.contents().contains("\"Unauthorized\":1.0"), "they are counted as Unauthorized");

    // The partner's JWKS endpoint is down and no key is cached: a valid token cannot be checked.
    let w = world();
    w.jwks.set_down(true);
    let good = w.partner_token("acme-billing-sync");
    assert_eq!(answer(&w, &jwt_event(&good)).await, Err(Unauthorized));
    assert_eq!(authorizer_errors(&w.metrics), ["keys_unavailable"]);
    // Certificate callers are not affected.
    assert!(answer(&w, &mtls_event(&w.cert("order-processing").pem)).await.is_ok());
    assert_eq!(authorizer_errors(&w.metrics).len(), 1);
}

/// A CRL past its nextUpdate refuses certificates of its issuer as an outage (`stale_crl`), and so does revocation
/// that cannot be known because the CRL bundle holds no CRL for the issuer (`revocation_unknown`).
#[tokio::test(flavor = "multi_thread")]
async fn a_stale_or_missing_crl_is_an_authorizer_error() {
    let w = world();
    let pem = w.cert("order-processing").pem.clone();
    let now = SystemTime::now();
    w.crls.set(w.ca.crl(&[], now - hours(3), now - hours(1)).unwrap().pem.into_bytes());
    assert_eq!(answer(&w, &mtls_event(&pem)).await, Err(Unauthorized));
    assert_eq!(authorizer_errors(&w.metrics), ["stale_crl"]);
    let other = TestCa::root("Other CA").unwrap();
    w.crls.set(other.crl(&[], now - hours(1), now + hours(1)).unwrap().pem.into_bytes());
    assert_eq!(answer(&w, &mtls_event(&pem)).await, Err(Unauthorized));
    assert_eq!(authorizer_errors(&w.metrics), ["stale_crl", "revocation_unknown"]);
}

/// A truststore (or CRL bundle) that cannot be read at a refresh is reported (`trust_refresh_failed`) while the
/// last good material keeps serving.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_trust_refresh_is_an_authorizer_error_and_the_last_material_serves() {
    let w = world();
    let pem = w.cert("order-processing").pem.clone();
    w.trust.set_unavailable(true);
    assert!(answer(&w, &mtls_event(&pem)).await.is_ok());
    assert_eq!(authorizer_errors(&w.metrics), ["trust_refresh_failed"]);
    w.trust.set_unavailable(false);
    // A bundle the loader refuses (a certificate where CRLs belong): the last good CRLs stay in use.
    w.crls.set(w.ca.cert_pem().as_bytes().to_vec());
    assert!(answer(&w, &mtls_event(&pem)).await.is_ok());
    assert_eq!(authorizer_errors(&w.metrics), ["trust_refresh_failed", "trust_refresh_failed"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_method_arn_is_an_authorizer_error() {
    let w = world();
    let e = event_with_arn(&w.cert("order-processing").pem, "arn:aws:lambda:eu-west-1:123456789012:function:x");
    assert_eq!(answer(&w, &e).await, Err(Unauthorized));
    assert_eq!(authorizer_errors(&w.metrics), ["bad_method_arn"]);
}

/// The cold start reads the trust material once; when it cannot (here: the CRL bundle is missing), the function
/// still starts: partner callers are served, certificate callers are refused as an outage until a refresh loads the
/// material, and then they are served.
#[tokio::test(flavor = "multi_thread")]
async fn a_missing_crl_at_cold_start_refuses_certificates_only_until_a_refresh_loads_it() {
    let missing = MemoryObjectSource::default();
    let crls = missing.clone();
    let w = world_with(&[("TRUST_REFRESH_SECONDS", "0")], move |_, s, mut deps| {
        deps.trust = Trust::Sources(TrustSources { truststore: Arc::new(s.trust.clone()), crls: Some(Arc::new(crls)) });
        deps
    });
    assert!(w.app.trust_load_error().is_some_and(|e| e.contains("CRL")), "{:?}", w.app.trust_load_error());
    assert_eq!(authorizer_errors(&w.metrics), ["trust_refresh_failed"], "the cold start reports the failed read");
    let pem = w.cert("order-processing").pem.clone();

    let partner = answer(&w, &jwt_event(&w.partner_token("acme-billing-sync"))).await.unwrap();
    assert_eq!(partner["principalId"], "partner-acme");
    assert_eq!(answer(&w, &mtls_event(&pem)).await, Err(Unauthorized));
    let errors = authorizer_errors(&w.metrics);
    assert!(errors.contains(&"revocation_unknown".to_owned()), "{errors:?}");

    let now = SystemTime::now();
    missing.set(w.ca.crl(&[], now - hours(1), now + hours(1)).unwrap().pem.into_bytes());
    let v = answer(&w, &mtls_event(&pem)).await.expect("served once a refresh loaded the CRL");
    assert_eq!(v["principalId"], "order-processing");
}

/// The same when the truststore itself cannot be read at cold start: `no_trust_material` until a refresh loads it.
#[tokio::test(flavor = "multi_thread")]
async fn an_unreadable_truststore_at_cold_start_refuses_certificates_only_until_a_refresh_loads_it() {
    let w = world_with(&[("TRUST_REFRESH_SECONDS", "0")], |_, s, deps| {
        s.trust.set_unavailable(true);
        deps
    });
    assert!(w.app.trust_load_error().is_some());
    let pem = w.cert("order-processing").pem.clone();
    assert_eq!(answer(&w, &mtls_event(&pem)).await, Err(Unauthorized));
    assert!(authorizer_errors(&w.metrics).contains(&"no_trust_material".to_owned()));
    assert!(answer(&w, &jwt_event(&w.partner_token("acme-billing-sync"))).await.is_ok());
    w.trust.set_unavailable(false);
    assert_eq!(answer(&w, &mtls_event(&pem)).await.unwrap()["principalId"], "order-processing");
}

/// An endpoint on loopback that accepts connections and never answers; it lives as long as the listener.
fn silent_endpoint() -> (String, std::net::TcpListener) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    (format!("http://127.0.0.1:{port}"), l)
}

/// Trust material in S3 that never answers holds the cold start for the S3 client's timeouts only (one second per
/// object), not until Lambda's init timeout; the function then serves partners and refuses certificates.
#[tokio::test(flavor = "multi_thread")]
async fn trust_material_on_a_silent_endpoint_does_not_hold_the_cold_start() {
    let (endpoint, _listener) = silent_endpoint();
    let env = [
        ("TRUSTSTORE_URI", "s3://trust/truststore.pem"),
        ("CRL_URI", "s3://trust/crls.pem"),
        // Required by the SSM-backed adapters; this test keeps the world's in-memory key source.
        ("CONTEXT_KEY_PARAMETER", "/token-broker/test/context-keys"),
    ];
    let w = tokio::time::timeout(
        Duration::from_secs(20),
        tokio::task::spawn_blocking(move || {
            world_with(&env, move |cfg, _, deps| {
                let sdk = block_on(tb_devkit::moto::sdk_config_at(&endpoint, "eu-west-1"));
                let aws = Deps::from_sdk_config(cfg, &sdk).unwrap();
                Deps { trust: aws.trust, ..deps }
            })
        }),
    )
    .await
    .expect("the cold start hung on a silent S3 endpoint")
    .unwrap();
    assert!(w.built_in < Duration::from_secs(3), "the cold start took {:?}", w.built_in);
    assert!(w.app.trust_load_error().is_some());
    assert!(answer(&w, &jwt_event(&w.partner_token("acme-billing-sync"))).await.is_ok());
    assert_eq!(answer(&w, &mtls_event(&w.cert("order-processing").pem)).await, Err(Unauthorized));
    assert!(authorizer_errors(&w.metrics).contains(&"no_trust_material".to_owned()));
}

/// The policy's key floor reaches the verifier the builder makes: with `min_ec_key_bits: 384`, a P-256 certificate
/// (and a P-256 CA) is an unusable credential, and the same caller on P-384 keys is served.
#[tokio::test(flavor = "multi_thread")]
async fn the_policys_key_floor_applies_through_the_builder() {
    use tb_devkit::pki::KeyKind;
    let now = SystemTime::now();
    let decide = |kind: KeyKind, floor: &'static str| async move {
        let ca = TestCa::root_with("Floor Root CA", kind).unwrap();
        let leaf = ca
            .issue_client()
            .key(kind)
            .cn("svc")
            .san_uri("spiffe://example.internal/svc")
            .validity(now - hours(1), now + hours(1))
            .build()
            .unwrap();
        let policy = tb_devkit::fixtures::write_policy(&format!(
            "version: 1\nsettings:\n  min_ec_key_bits: {floor}\ncallers:\n  - id: svc\n    identities: [{{ type: san_uri, value: \"spiffe://example.internal/svc\" }}]\n    cognito_client: svc\n    allowed_scopes: [api/read]\n    max_token_lifetime_seconds: 3600\n    quotas: unlimited\n"
        ));
        let cfg = Config::read(&Env::from_pairs([("POLICY_FILE", policy.path().to_str().unwrap())])).unwrap();
        let deps = Deps {
            trust: Trust::Sources(TrustSources {
                truststore: Arc::new(MemoryObjectSource::new(ca.cert_pem().as_bytes().to_vec())),
                crls: None,
            }),
            jwks: Arc::new(MemoryJwksFetcher::default()),
            metrics: MetricsSink::to_writer("TokenBroker", CaptureWriter::default()),
            clock: Clock::system(),
            context_keys: tb_devkit::fixtures::context_keys(),
        };
        let app = build(&cfg, deps).await.unwrap();
        handle_request(&app, &mtls_event(&leaf.pem), now).await.map(|v| Value::from(v.principal_id))
    };
    assert_eq!(decide(KeyKind::EcdsaP256, "256").await, Ok(Value::from("svc")));
    assert_eq!(decide(KeyKind::EcdsaP256, "384").await, Err(Unauthorized));
    assert_eq!(decide(KeyKind::EcdsaP384, "384").await, Ok(Value::from("svc")));
}

/// After a failed cold start the sources are asked again within seconds, not only at the next refresh interval
/// (an hour here): a passing S3 error must not refuse certificate callers for the whole interval.
#[tokio::test(flavor = "multi_thread")]
async fn material_missing_since_the_cold_start_is_retried_within_seconds() {
    let missing = MemoryObjectSource::default();
    let crls = missing.clone();
    let w = world_with(&[("TRUST_REFRESH_SECONDS", "3600")], move |_, s, mut deps| {
        deps.trust = Trust::Sources(TrustSources { truststore: Arc::new(s.trust.clone()), crls: Some(Arc::new(crls)) });
        deps
    });
    let pem = w.cert("order-processing").pem.clone();
    assert_eq!(answer(&w, &mtls_event(&pem)).await, Err(Unauthorized));
    let now = SystemTime::now();
    missing.set(w.ca.crl(&[], now - hours(1), now + hours(1)).unwrap().pem.into_bytes());
    tokio::time::sleep(Duration::from_millis(5_200)).await;
    let v = answer(&w, &mtls_event(&pem)).await.expect("the CRL is read again within seconds");
    assert_eq!(v["principalId"], "order-processing");
}
