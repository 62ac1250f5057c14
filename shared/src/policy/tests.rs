use super::*;

const EXAMPLE: &str = include_str!("../../../config/policy.example.yaml");

fn load(doc: &str) -> Result<Policy, PolicyError> {
    Policy::from_bytes("policy.yaml", doc.as_bytes())
}

fn err(doc: &str) -> String {
    load(doc).expect_err("must be refused").to_string()
}

const BASE_CALLER: &str = r#"
  - id: a
    identities: [{ type: san_uri, value: "spiffe://x/a" }]
    cognito_client: a
    allowed_scopes: [s/read]
    max_token_lifetime_seconds: 3600
"#;

#[test]
fn example_policy_loads() {
    let p = load(EXAMPLE).unwrap();
    assert_eq!(p.callers().len(), 3);
    assert_eq!(p.version.len(), 16);
    let reporting = p.caller_for(&IdentityKey::SanDns("reporting.svc.example.internal".into())).unwrap();
    assert_eq!(reporting.id.as_str(), "reporting");
    assert_eq!(
        reporting.quotas,
        vec![QuotaWindow { name: "day".into(), length: Duration::from_secs(86_400), limit: 3 }]
    );
    let partner = p
        .caller_for(&IdentityKey::Jwt {
            issuer: "https://idp.acme.example".into(),
            subject: "acme-billing-sync".into(),
        })
        .unwrap();
    assert_eq!(partner.id.as_str(), "partner-acme");
    assert_eq!(
        p.issuer("https://idp.acme.example").unwrap().algorithms,
        vec![JwtAlgorithm::RS256, JwtAlgorithm::ES256]
    );
    assert!(p.has_certificate_callers());
}

#[test]
fn version_is_content_hash() {
    let a = load(EXAMPLE).unwrap();
    let b = load(&format!("{EXAMPLE}\n# comment\n")).unwrap();
    assert_ne!(a.version, b.version);
    assert_eq!(a.version, load(EXAMPLE).unwrap().version);
}

#[test]
fn unknown_keys_are_refused_everywhere() {
    assert!(err("version: 1\ncalers: []\n").contains("unknown field"));
    let e = err(&format!("version: 1\ncallers:{BASE_CALLER}    tokn_reuse: true\n"));
    assert!(e.contains("unknown field") && e.contains("tokn_reuse"), "{e}");
    let e = err("version: 1\ncallers:\n  - id: a\n    identities: [{ type: san_uri, value: \"spiffe://x\", extra: 1 }]\n    cognito_client: a\n    allowed_scopes: [s]\n    max_token_lifetime_seconds: 3600\n");
    assert!(e.contains("unknown field"), "{e}");
}

#[test]
fn duplicate_callers_are_refused() {
    let doc = format!("version: 1\ncallers:{BASE_CALLER}{}", BASE_CALLER.replace("spiffe://x/a", "spiffe://x/b"));
    let e = err(&doc);
    assert!(e.contains("policy.yaml") && e.contains("\"a\"") && e.contains("duplicate caller id"), "{e}");
}

#[test]
fn identity_mapped_to_two_callers_is_refused() {
    let doc = format!("version: 1\ncallers:{BASE_CALLER}{}", BASE_CALLER.replace("id: a", "id: b"));
    let e = err(&doc);
    assert!(
        e.contains("caller \"b\"") && e.contains("identities") && e.contains("already mapped to caller \"a\""),
        "{e}"
    );
}

#[test]
fn san_dns_identities_collide_case_insensitively() {
    let doc = "version: 1\ncallers:\n  - id: a\n    identities: [{ type: san_dns, value: Svc.Example }]\n    cognito_client: a\n    allowed_scopes: [s]\n    max_token_lifetime_seconds: 3600\n  - id: b\n    identities: [{ type: san_dns, value: svc.example }]\n    cognito_client: b\n    allowed_scopes: [s]\n    max_token_lifetime_seconds: 3600\n";
    assert!(err(doc).contains("already mapped"));
}

#[test]
fn default_scope_outside_allowed_is_refused() {
    let doc = format!("version: 1\ncallers:{BASE_CALLER}    default_scopes: [s/admin]\n");
    let e = err(&doc);
    assert!(e.contains("default_scopes") && e.contains("s/admin") && e.contains("not in allowed_scopes"), "{e}");
}

#[test]
fn field_errors_name_caller_and_field() {
    let cases = [
        ("    quotas: [{ per: fortnight, limit: 1 }]\n", "quotas.per"),
        ("    quotas: [{ per: day, limit: 0 }]\n", "quotas.limit"),
        ("    quotas: [{ per: day, limit: 1 }, { per: 86400s, limit: 2 }]\n", "quotas.per"),
        ("    usage_plan_key: short\n", "usage_plan_key"),
    ];
    for (extra, field) in cases {
        let e = err(&format!("version: 1\ncallers:{BASE_CALLER}{extra}"));
        assert!(e.contains("caller \"a\"") && e.contains(field), "{field}: {e}");
    }
    let e = err(&BASE_CALLER.replace("3600", "10").replace("\n  - id", "version: 1\ncallers:\n  - id"));
    assert!(e.contains("max_token_lifetime_seconds"), "{e}");
    let e = err(&format!("version: 1\ncallers:{}", BASE_CALLER.replace("cognito_client: a", "cognito_client: a/../b")));
    assert!(e.contains("cognito_client"), "{e}");
    let e = err(&format!("version: 1\ncallers:{}", BASE_CALLER.replace("s/read", "\"bad scope\"")));
    assert!(e.contains("allowed_scopes"), "{e}");
}

#[test]
fn cert_pins_must_be_sha256_hex() {
    let doc = format!(
        "version: 1\ncallers:{}",
        BASE_CALLER.replace("{ type: san_uri, value: \"spiffe://x/a\" }", "{ type: cert_sha256, value: abcd }")
    );
    assert!(err(&doc).contains("identities.cert_sha256"));
}

#[test]
fn jwt_identity_needs_a_configured_issuer() {
    let doc = format!(
        "version: 1\ncallers:{}",
        BASE_CALLER.replace(
            "{ type: san_uri, value: \"spiffe://x/a\" }",
            "{ type: jwt, issuer: \"https://nope\", subject: s }"
        )
    );
    assert!(err(&doc).contains("is not listed under issuers"));
}

#[test]
fn issuers_refuse_symmetric_algorithms_and_plain_http() {
    let issuer = |alg: &str, url: &str| {
        format!("version: 1\nissuers:\n  - issuer: https://i\n    jwks_url: {url}\n    audiences: [a]\n    algorithms: [{alg}]\n    max_token_age_seconds: 300\n")
    };
    assert!(load(&issuer("RS256", "https://i/jwks")).is_ok());
    assert!(load(&issuer("ES256", "http://127.0.0.1:9/jwks")).is_ok());
    for alg in ["HS256", "none", "NONE", "rs256"] {
        let e = err(&issuer(alg, "https://i/jwks"));
        assert!(e.contains("issuer \"https://i\"") && e.contains("algorithms"), "{alg}: {e}");
    }
    assert!(err(&issuer("RS256", "http://idp.example/jwks")).contains("jwks_url"));
}

#[test]
fn wrong_version_and_garbage_are_refused() {
    assert!(err("version: 2\n").contains("unsupported version"));
    assert!(err("[[[").contains("not a valid policy document"));
    assert!(err("").contains("policy.yaml"));
}

#[test]
fn usage_plan_key_is_hidden_from_debug() {
    let p = load(EXAMPLE).unwrap();
    let dbg = format!("{p:?}");
    assert!(!dbg.contains("reporting-usage-plan-key-0001"), "{dbg}");
    let reporting = p.caller(&CallerId::try_from("reporting").unwrap()).unwrap();
    assert_eq!(reporting.usage_plan_key.as_ref().unwrap().expose(), "reporting-usage-plan-key-0001");
}
