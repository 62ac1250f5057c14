//! `brokerctl secret put` against SSM on moto (`scripts/with-moto.sh` exports `TB_MOTO_ENDPOINT` and fake
//! credentials; these tests fail, never skip, without it). The binary itself is run with the value on standard
//! input, and what it prints is checked never to hold the secret; what it wrote is read back through the broker's
//! own SSM credential source.

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

use brokerctl::secret;
use secrecy::ExposeSecret;
use tb_broker::{CredentialError, CredentialSource, SsmCredentialSource};
use tb_devkit::{fixtures, moto};

const SECRET: &str = "zq8v1yqk0x3c7mbb2r5t9w4e6u1i0o3p5a7s9d2f4g6h8j0k1l";

fn value(secret: &str) -> String {
    format!(
        r#"{{"client_id":"abc123client","client_secret":"{secret}","token_url":"https://auth.example.com/oauth2/token"}}"#
    )
}

/// Runs `brokerctl secret put ARGS` with `stdin` piped in, against moto.
fn put(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_brokerctl"))
        .args(["secret", "put", "--endpoint", &moto::endpoint(), "--region", moto::REGION])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("brokerctl starts");
    child.stdin.take().expect("stdin is piped").write_all(stdin.as_bytes()).expect("stdin is written");
    child.wait_with_output().expect("brokerctl runs")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn assert_no_secret(o: &Output, secret: &str) {
    let shown = text(o);
    assert!(!shown.contains(secret), "the secret was printed: {shown}");
}

async fn ssm() -> aws_sdk_ssm::Client {
    aws_sdk_ssm::Client::new(&moto::sdk_config().await)
}

#[tokio::test]
async fn put_writes_a_securestring_the_brokers_source_reads_back() {
    let prefix = format!("/{}", moto::unique("tb-put"));
    let out = put(&["--prefix", &prefix, "--client", "orders"], &format!("{}\n", value(SECRET)));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_no_secret(&out, SECRET);
    assert!(text(&out).contains("read back through the broker's SSM credential source: ok"), "{}", text(&out));

    let ssm = ssm().await;
    let source = SsmCredentialSource::with_client(ssm.clone(), &prefix).unwrap();
    let creds = source.get("orders").await.unwrap();
    assert_eq!(creds.client_id, "abc123client");
    assert_eq!(creds.client_secret.expose_secret(), SECRET);
    assert_eq!(creds.upstream.to_string(), "https://auth.example.com/oauth2/token");
    let info = secret::info(&ssm, &format!("{prefix}/orders")).await.unwrap().unwrap();
    assert!(info.secure);
    assert_eq!(info.description.as_deref().and_then(secret::recorded_secret_id), None);
}

#[tokio::test]
async fn an_existing_parameter_is_replaced_only_with_overwrite() {
    let prefix = format!("/{}", moto::unique("tb-put"));
    let name = format!("{prefix}/orders");
    assert_eq!(put(&["--name", &name], &value(SECRET)).status.code(), Some(0));

    let other = "n3wsecretvalue0000000000000000000000000000000000000";
    let refused = put(&["--name", &name], &value(other));
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(text(&refused).contains("--overwrite"), "{}", text(&refused));
    assert_no_secret(&refused, other);
    let source = SsmCredentialSource::with_client(ssm().await, &prefix).unwrap();
    assert_eq!(source.get("orders").await.unwrap().client_secret.expose_secret(), SECRET, "left unchanged");

    let out =
        put(&["--name", &name, "--overwrite", "--cognito-secret-id", "abc123client--1700000000000"], &value(other));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_no_secret(&out, other);
    assert_eq!(source.get("orders").await.unwrap().client_secret.expose_secret(), other);
    let info = secret::info(&ssm().await, &name).await.unwrap().unwrap();
    assert_eq!(info.version, 2);
    assert_eq!(
        info.description.as_deref().and_then(secret::recorded_secret_id).as_deref(),
        Some("abc123client--1700000000000")
    );

    // Overwriting without an id drops the record: the new value may hold another secret.
    let out = put(&["--name", &name, "--overwrite"], &value(SECRET));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let info = secret::info(&ssm().await, &name).await.unwrap().unwrap();
    assert_eq!(info.description.as_deref().and_then(secret::recorded_secret_id), None);
}

#[tokio::test]
async fn values_the_broker_would_refuse_are_refused_and_nothing_is_written() {
    let prefix = format!("/{}", moto::unique("tb-put"));
    let cases = [
        format!(r#"{{"client_id":"abc","client_secret":"{SECRET}","token_url":"https://a.example/t","tokenurl":"x"}}"#),
        format!(r#"{{"client_id":"abc","client_secret":"{SECRET}"}}"#),
        format!(r#"{{"client_id":"abc","client_secret":"{SECRET}","token_url":"http://auth.example.com/t"}}"#),
        format!(r#"{{"client_id":"abc","client_secret":"{SECRET}","domain_prefix":"p"}}"#),
        SECRET.to_string(),
        String::new(),
    ];
    for (i, c) in cases.iter().enumerate() {
        let out = put(&["--prefix", &prefix, "--client", &format!("c{i}")], c);
        assert_eq!(out.status.code(), Some(2), "case {i}: {}", text(&out));
        assert_no_secret(&out, SECRET);
        let source = SsmCredentialSource::with_client(ssm().await, &prefix).unwrap();
        assert_eq!(source.get(&format!("c{i}")).await.unwrap_err(), CredentialError::NotFound, "case {i}");
    }
    let out = put(&["--prefix", &prefix, "--client", "big"], &"x".repeat(secret::MAX_INPUT_BYTES + 1));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

#[tokio::test]
async fn a_caller_is_mapped_to_its_cognito_client_by_the_policy() {
    let policy = fixtures::write_policy(&fixtures::reporting_policy(10));
    let path = policy.path().to_str().unwrap();
    let prefix = format!("/{}", moto::unique("tb-put"));
    let out = put(&["--prefix", &prefix, "--caller", fixtures::REPORTING_CALLER, "--policy", path], &value(SECRET));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains(&format!("{prefix}/reporting")), "{}", text(&out));
    let source = SsmCredentialSource::with_client(ssm().await, &prefix).unwrap();
    assert_eq!(source.get("reporting").await.unwrap().client_id, "abc123client");

    let out = put(&["--prefix", &prefix, "--caller", "nobody", "--policy", path], &value(SECRET));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("no caller"), "{}", text(&out));
}

#[tokio::test]
async fn command_line_mistakes_are_usage_errors() {
    for args in [
        vec!["--client", "orders"],
        vec!["--prefix", "/tb"],
        vec!["--prefix", "/tb/", "--client", "orders"],
        vec!["--prefix", "/tb", "--client", "a/b"],
        vec!["--prefix", "/tb", "--caller", "x"],
        vec!["--name", "/tb/x", "--client", "orders"],
    ] {
        let out = put(&args, &value(SECRET));
        assert_eq!(out.status.code(), Some(64), "{args:?}: {}", text(&out));
    }
}

#[test]
fn help_explains_standard_input_and_overwrite() {
    let out = Command::new(env!("CARGO_BIN_EXE_brokerctl")).args(["secret", "put", "--help"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out);
    for needle in ["standard input", "--overwrite", "client_secret", "--kms-key-id", "Exit codes"] {
        assert!(help.contains(needle), "{needle} missing from:\n{help}");
    }
}
