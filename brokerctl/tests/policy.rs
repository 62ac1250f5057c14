//! `policy check` and `policy explain` against a generated development PKI and partner key (the local stack's state
//! directory), so explain is exercised on exactly the decisions the authorizer makes in production.

use std::process::Command;
use std::time::Duration;

use brokerctl::devstack::DevState;
use brokerctl::policy::{explain, ExplainInput};
use brokerctl::Exit;

/// A directory removed when the returned guard drops.
fn tempdir(tag: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(&format!("brokerctl-policy-{tag}-")).tempdir().unwrap()
}

/// A state directory with its CRL and a policy whose issuer JWKS URL is never fetched (explain gets --jwks). The
/// directory lives as long as the returned guard.
fn state(tag: &str) -> (tempfile::TempDir, DevState) {
    let dir = tempdir(tag);
    let s = DevState::open(dir.path()).unwrap();
    s.write_crl().unwrap();
    s.write_policy("http://127.0.0.1:9/jwks.json").unwrap();
    (dir, s)
}

fn input(s: &DevState) -> ExplainInput {
    ExplainInput {
        policy: s.paths.policy(),
        cert: None,
        jwt: None,
        truststore: Some(s.paths.truststore()),
        crl: Some(s.paths.crl()),
        jwks: None,
        at: None,
    }
}

#[tokio::test]
async fn explain_names_the_caller_its_scopes_and_quotas() {
    let (_dir, s) = state("allow");
    let x = explain(&ExplainInput { cert: Some(s.paths.client_cert("reporting")), ..input(&s) }).await.unwrap();
    assert_eq!(x.exit_code, Exit::Ok, "{}", x.report);
    for needle in [
        "decision: ALLOW",
        "caller: reporting",
        "auth method: mtls",
        "allowed scopes: customer-api/read",
        "quotas: 3 per day",
        "san dns: reporting.svc.example.internal",
        "usage plan key: set",
    ] {
        assert!(x.report.contains(needle), "{needle} missing:\n{}", x.report);
    }
    assert!(!x.report.contains("dev-usage-plan-key"), "the usage plan key value leaked:\n{}", x.report);
}

#[tokio::test]
async fn explain_says_why_a_certificate_is_denied() {
    let (_dir, s) = state("deny");
    let x = explain(&ExplainInput { cert: Some(s.paths.client_cert("stranger")), ..input(&s) }).await.unwrap();
    assert_eq!(x.exit_code, Exit::Deny, "{}", x.report);
    assert!(x.report.contains("reason: unknown_caller"), "{}", x.report);
    assert!(x.report.contains("san uri: spiffe://example.internal/ns/misc/sa/stranger"), "{}", x.report);

    s.revoke("order-processing").unwrap();
    let x = explain(&ExplainInput { cert: Some(s.paths.client_cert("order-processing")), ..input(&s) }).await.unwrap();
    assert_eq!(x.exit_code, Exit::Deny, "{}", x.report);
    assert!(x.report.contains("revoked_certificate"), "{}", x.report);

    // Without the CRL the authorizer does not check revocation: explain reports what production would do.
    let x = explain(&ExplainInput { cert: Some(s.paths.client_cert("order-processing")), crl: None, ..input(&s) })
        .await
        .unwrap();
    assert_eq!(x.exit_code, Exit::Ok, "{}", x.report);
}

#[tokio::test]
async fn explain_checks_partner_jwts_with_a_given_jwks() {
    let (_dir, s) = state("jwt");
    let dir = s.paths.dir.clone();
    std::fs::write(dir.join("jwks.json"), s.partner_jwks().unwrap().to_string()).unwrap();
    std::fs::write(dir.join("ok.jwt"), s.partner_token().unwrap()).unwrap();
    let old = s
        .partner_token_with(
            brokerctl::devstack::state::PARTNER_SUBJECT,
            Duration::from_secs(600),
            Duration::from_secs(60),
        )
        .unwrap();
    std::fs::write(dir.join("old.jwt"), old).unwrap();
    let base = ExplainInput { truststore: None, crl: None, jwks: Some(dir.join("jwks.json")), ..input(&s) };

    let x = explain(&ExplainInput { jwt: Some(dir.join("ok.jwt")), ..base.clone() }).await.unwrap();
    assert_eq!(x.exit_code, Exit::Ok, "{}", x.report);
    assert!(x.report.contains("caller: partner-acme") && x.report.contains("auth method: jwt"), "{}", x.report);

    let x = explain(&ExplainInput { jwt: Some(dir.join("old.jwt")), ..base }).await.unwrap();
    assert_eq!(x.exit_code, Exit::Unauthorized, "{}", x.report);
    assert!(x.report.contains("invalid_jwt") && x.report.contains("expired"), "{}", x.report);
    let token = std::fs::read_to_string(dir.join("old.jwt")).unwrap();
    assert!(!x.report.contains(&token), "explain printed the token");
}

/// `--at` moves every time check, the JWT's included: a token valid now is explained as expired a year ahead and as
/// not yet valid a day before it was issued.
#[tokio::test]
async fn explain_at_another_time_checks_the_jwt_times_then() {
    let (_dir, s) = state("jwt-at");
    let dir = s.paths.dir.clone();
    std::fs::write(dir.join("jwks.json"), s.partner_jwks().unwrap().to_string()).unwrap();
    std::fs::write(dir.join("ok.jwt"), s.partner_token().unwrap()).unwrap();
    let base = ExplainInput {
        truststore: None,
        crl: None,
        jwks: Some(dir.join("jwks.json")),
        jwt: Some(dir.join("ok.jwt")),
        ..input(&s)
    };
    let now = std::time::SystemTime::now();

    let x = explain(&ExplainInput { at: Some(now), ..base.clone() }).await.unwrap();
    assert_eq!(x.exit_code, Exit::Ok, "{}", x.report);
    let x = explain(&ExplainInput { at: Some(now + Duration::from_secs(365 * 86_400)), ..base.clone() }).await.unwrap();
    assert_eq!(x.exit_code, Exit::Unauthorized, "{}", x.report);
    assert!(x.report.contains("expired"), "{}", x.report);
    let x = explain(&ExplainInput { at: Some(now - Duration::from_secs(86_400)), ..base }).await.unwrap();
    assert_eq!(x.exit_code, Exit::Unauthorized, "{}", x.report);
    assert!(x.report.contains("not yet valid") || x.report.contains("future"), "{}", x.report);
}

#[tokio::test]
async fn explain_needs_a_truststore_for_certificates() {
    let (_dir, s) = state("nots");
    let e = explain(&ExplainInput { cert: Some(s.paths.client_cert("reporting")), truststore: None, ..input(&s) })
        .await
        .unwrap_err();
    assert!(e.to_string().contains("--truststore"), "{e}");
}

#[tokio::test]
async fn explain_calls_an_unreadable_truststore_or_crl_an_input_error_not_a_decision() {
    let (dir, s) = state("unreadable");
    let missing = dir.path().join("no-such-file.pem");
    for (truststore, crl) in [(missing.clone(), s.paths.crl()), (s.paths.truststore(), missing.clone())] {
        let e = explain(&ExplainInput {
            cert: Some(s.paths.client_cert("reporting")),
            truststore: Some(truststore),
            crl: Some(crl),
            ..input(&s)
        })
        .await
        .unwrap_err();
        assert!(e.to_string().contains("trust material"), "{e}");
    }
}

fn brokerctl(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_brokerctl")).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_accepts_the_example_and_names_the_caller_and_field_of_a_mistake() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/policy.example.yaml");
    let (code, out, err) = brokerctl(&["policy", "check", example]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("OK") && out.contains("caller reporting"), "{out}");

    let dir = tempdir("check");
    let bad = dir.path().join("bad.yaml");
    let text = std::fs::read_to_string(example).unwrap().replacen(
        "    default_scopes: [customer-api/read]\n    quotas:\n      - { per: day, limit: 3 }",
        "    default_scopes: [customer-api/admin]\n    quotas:\n      - { per: day, limit: 3 }",
        1,
    );
    assert!(text.contains("[customer-api/admin]\n    quotas:\n      - { per: day"), "example policy changed shape");
    std::fs::write(&bad, text).unwrap();
    let (code, _, err) = brokerctl(&["policy", "check", bad.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("bad.yaml") && err.contains("\"reporting\"") && err.contains("default_scopes"), "{err}");
}

#[test]
fn explain_exit_codes_from_the_binary() {
    let (_dir, s) = state("bin");
    let p = |x: std::path::PathBuf| x.display().to_string();
    let args = |client: &str| {
        vec![
            "policy".to_owned(),
            "explain".into(),
            "--policy".into(),
            p(s.paths.policy()),
            "--truststore".into(),
            p(s.paths.truststore()),
            "--crl".into(),
            p(s.paths.crl()),
            "--cert".into(),
            p(s.paths.client_cert(client)),
        ]
    };
    let run = |client: &str| {
        let a = args(client);
        brokerctl(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    assert_eq!(run("order-processing").0, 0);
    assert_eq!(run("stranger").0, 3);
    // --at moves the decision in time: ten years ahead the certificate has expired (401), and a time that does
    // not parse is a usage error.
    let at = |when: &str| {
        let mut a = args("order-processing");
        a.extend(["--at".to_owned(), when.to_owned()]);
        brokerctl(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    assert_eq!(at("+1h").0, 0);
    let (code, text, _) = at("+3650d");
    assert_eq!(code, 4, "{text}");
    assert!(text.contains("expired"), "{text}");
    let far = humantime::format_rfc3339(std::time::SystemTime::now() + std::time::Duration::from_secs(3650 * 86_400));
    assert_eq!(at(&far.to_string()).0, 4);
    assert_eq!(at("next tuesday").0, 64);
}

/// A policy that hashes caller ids in logs is explained like any other (the report names the caller in clear).
#[tokio::test]
async fn explain_works_on_a_policy_that_hashes_caller_ids() {
    let (_dir, s) = state("hashing");
    let text = std::fs::read_to_string(s.paths.policy()).unwrap();
    assert!(text.contains("hash_caller_ids: false"), "the generated policy changed");
    std::fs::write(s.paths.policy(), text.replace("hash_caller_ids: false", "hash_caller_ids: true")).unwrap();
    let x = explain(&ExplainInput { cert: Some(s.paths.client_cert("reporting")), ..input(&s) }).await.unwrap();
    assert_eq!(x.exit_code, Exit::Ok, "{}", x.report);
    assert!(x.report.contains("caller: reporting"), "{}", x.report);
}

#[test]
fn check_warns_about_an_unlimited_caller_and_refuses_a_missing_quota() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/policy.example.yaml");
    let text = std::fs::read_to_string(example).unwrap();
    let reporting_quota = "    quotas:\n      - { per: day, limit: 3 }\n";
    assert!(text.contains(reporting_quota), "example policy changed shape");
    let dir = tempdir("unlimited");

    let unlimited = dir.path().join("unlimited.yaml");
    std::fs::write(&unlimited, text.replacen(reporting_quota, "    quotas: unlimited\n", 1)).unwrap();
    let (code, out, err) = brokerctl(&["policy", "check", unlimited.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("warning: caller reporting has quotas: unlimited"), "{out}");
    let (_, out, _) = brokerctl(&["policy", "check", example]);
    assert!(!out.contains("warning"), "the example has no unlimited caller: {out}");

    let missing = dir.path().join("missing.yaml");
    std::fs::write(&missing, text.replacen(reporting_quota, "", 1)).unwrap();
    let (code, _, err) = brokerctl(&["policy", "check", missing.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("\"reporting\"") && err.contains("quotas") && err.contains("unlimited"), "{err}");
}
