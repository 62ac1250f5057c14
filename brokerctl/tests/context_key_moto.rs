//! `brokerctl context-key` against SSM on moto (`scripts/with-moto.sh` exports `TB_MOTO_ENDPOINT` and fake
//! credentials; these tests fail, never skip, without it). The binary itself is run; everything it prints is checked
//! never to hold a key's bytes (in base64 or hex), and what it wrote is read back through the functions' own
//! `SsmKeySource`.

use std::process::{Command, Output};

use base64::Engine as _;
use secrecy::ExposeSecret;
use tb_devkit::moto;
use tb_shared::context::{KeySet, KeySource, SsmKeySource};

/// Runs `brokerctl context-key ARGS --name NAME` against moto.
fn run(args: &[&str], name: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_brokerctl"))
        .arg("context-key")
        .args(args)
        .args(["--name", name, "--endpoint", &moto::endpoint(), "--region", moto::REGION])
        .output()
        .expect("brokerctl runs")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn name() -> String {
    format!("/{}/context-key", moto::unique("tb-ck"))
}

async fn ssm() -> aws_sdk_ssm::Client {
    aws_sdk_ssm::Client::new(&moto::sdk_config().await)
}

/// What the functions read from the parameter.
async fn read(name: &str) -> KeySet {
    SsmKeySource::new(ssm().await, name).fetch().await.expect("the functions' source reads the parameter")
}

/// Every way a key's bytes could be printed: the document's base64, url-safe base64 and hex.
fn encodings(set: &KeySet) -> Vec<String> {
    let doc: serde_json::Value = serde_json::from_str(set.to_document().expose_secret()).expect("a JSON document");
    let mut out = Vec::new();
    for key in doc["keys"].as_object().expect("keys").values() {
        let b64 = key.as_str().expect("base64 text").to_owned();
        let bytes = base64::engine::general_purpose::STANDARD.decode(&b64).expect("base64");
        out.push(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes));
        out.push(hex::encode(&bytes));
        // A fragment is as bad as the whole: the first 16 characters of the base64 are enough to notice.
        out.push(b64[..16].to_owned());
        out.push(b64);
    }
    out
}

fn assert_no_key_bytes(outputs: &[&Output], set: &KeySet) {
    for o in outputs {
        let shown = text(o);
        for enc in encodings(set) {
            assert!(!shown.contains(&enc), "key material was printed: {shown}");
        }
    }
}

fn ids(set: &KeySet) -> Vec<String> {
    set.ids().map(str::to_owned).collect()
}

#[tokio::test]
async fn init_creates_one_random_signing_key_that_the_functions_read() {
    let name = name();
    let out = run(&["init", "--kms-key-id", "alias/aws/ssm"], &name);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("read back through the functions' SSM key source: ok"), "{}", text(&out));
    let set = read(&name).await;
    let id = set.signing().id().to_owned();
    assert_eq!(ids(&set), std::slice::from_ref(&id));
    assert!(id.starts_with("ctx-") && id.len() == "ctx-YYYYMMDD-".len() + 8, "{id}");
    assert!(text(&out).contains(&format!("{id}  signing")), "{}", text(&out));
    let info = brokerctl::secret::info(&ssm().await, &name).await.unwrap().unwrap();
    assert!(info.secure, "a SecureString");
    assert_eq!(info.version, 1);

    // A second init is refused and changes nothing.
    let again = run(&["init"], &name);
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));
    assert!(text(&again).contains("already exists"), "{}", text(&again));
    let after = read(&name).await;
    assert_eq!(after.to_document().expose_secret(), set.to_document().expose_secret(), "the key set is unchanged");

    // Two stacks' keys differ: the key comes from the random generator.
    let other = name_with_init().await;
    assert_ne!(other.to_document().expose_secret(), set.to_document().expose_secret());
    assert_no_key_bytes(&[&out, &again], &set);
}

async fn name_with_init() -> KeySet {
    let name = name();
    let out = run(&["init", "--key-id", "first"], &name);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    read(&name).await
}

/// GIVEN a key set WHEN an operator runs the whole rotation (add, promote, retire; the waits skipped with --settle
/// 0s, which the rotation rehearsal in tests/ covers) THEN each step writes exactly the set `KeySet`'s own functions
/// make, the functions' source reads it, `show` names the signing key, and no key byte is ever printed.
#[tokio::test]
async fn a_rotation_adds_promotes_and_retires_through_the_key_set_rules() {
    let name = name();
    let init = run(&["init", "--key-id", "old"], &name);
    assert_eq!(init.status.code(), Some(0), "{}", text(&init));
    let first = read(&name).await;
    let old_bytes = encodings(&first);

    let add = run(&["add", "--key-id", "new"], &name);
    assert_eq!(add.status.code(), Some(0), "{}", text(&add));
    let two = read(&name).await;
    assert_eq!(ids(&two), ["new", "old"]);
    assert_eq!(two.signing().id(), "old", "an added key does not sign yet");
    assert!(text(&add).contains("context-key promote"), "add says what comes next: {}", text(&add));
    // The old key is carried over unchanged.
    assert!(encodings(&two).iter().any(|e| e == &old_bytes[3]), "the old key's bytes changed");

    let show = run(&["show"], &name);
    assert_eq!(show.status.code(), Some(0), "{}", text(&show));
    let shown = text(&show);
    assert!(shown.contains("old  signing") && shown.contains("new  accepted (not signing)"), "{shown}");
    assert!(shown.contains("version 2"), "{shown}");

    let third = run(&["add", "--key-id", "third"], &name);
    assert_eq!(third.status.code(), Some(2), "never three keys: {}", text(&third));
    assert!(text(&third).contains("nothing was written"), "{}", text(&third));
    let early = run(&["retire", "--key-id", "old", "--settle", "0s"], &name);
    assert_eq!(early.status.code(), Some(2), "the signing key is not retired: {}", text(&early));
    assert_eq!(ids(&read(&name).await), ["new", "old"]);

    let promote = run(&["promote", "--key-id", "new", "--settle", "0s"], &name);
    assert_eq!(promote.status.code(), Some(0), "{}", text(&promote));
    let switched = read(&name).await;
    assert_eq!(switched.signing().id(), "new");
    assert!(text(&promote).contains("context-key retire") && text(&promote).contains("--key-id old"));

    let retire = run(&["retire", "--key-id", "old", "--settle", "0s"], &name);
    assert_eq!(retire.status.code(), Some(0), "{}", text(&retire));
    let done = read(&name).await;
    assert_eq!(ids(&done), ["new"]);
    assert_eq!(done.signing().id(), "new");
    let expected = two.with_signing("new").unwrap().without("old").unwrap();
    assert_eq!(done.to_document().expose_secret(), expected.to_document().expose_secret(), "KeySet's own edits");
    let info = brokerctl::secret::info(&ssm().await, &name).await.unwrap().unwrap();
    assert_eq!(info.version, 4, "init, add, promote, retire: one version each, nothing for the refusals");

    assert_no_key_bytes(&[&init, &add, &show, &third, &early, &promote, &retire], &two);
}

/// The waits of the runbook are enforced: promote and retire are refused while the key set's last change is younger
/// than --settle (11 minutes by default), and nothing is written.
#[tokio::test]
async fn promote_and_retire_wait_for_the_last_change_to_settle() {
    let name = name();
    assert_eq!(run(&["init", "--key-id", "old"], &name).status.code(), Some(0));
    assert_eq!(run(&["add", "--key-id", "new"], &name).status.code(), Some(0));
    for args in [vec!["promote", "--key-id", "new"], vec!["promote", "--key-id", "new", "--settle", "1h"]] {
        let out = run(&args, &name);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(text(&out).contains("wait") && text(&out).contains("rotate-context-key.md"), "{}", text(&out));
    }
    assert_eq!(read(&name).await.signing().id(), "old", "nothing was written");
    assert_eq!(run(&["promote", "--key-id", "new", "--settle", "0s"], &name).status.code(), Some(0));
    let out = run(&["retire", "--key-id", "old"], &name);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert_eq!(ids(&read(&name).await), ["new", "old"]);
}

#[tokio::test]
async fn a_missing_or_foreign_parameter_is_refused_with_what_to_do() {
    let name = name();
    for args in [vec!["show"], vec!["add"], vec!["promote", "--key-id", "x", "--settle", "0s"]] {
        let out = run(&args, &name);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(text(&out).contains("context-key init"), "{}", text(&out));
    }
    // A String parameter, or a SecureString that is not a key-set document, is never edited.
    let ssm = ssm().await;
    let plain = format!("{name}-plain");
    ssm.put_parameter()
        .name(&plain)
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .value(r#"{"signing_key_id":"a","keys":{}}"#)
        .send()
        .await
        .unwrap();
    let out = run(&["add"], &plain);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("not a SecureString"), "{}", text(&out));
    let other = format!("{name}-other");
    let secret_value = "a-credentials-value-that-must-never-be-printed";
    ssm.put_parameter()
        .name(&other)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .value(format!(r#"{{"client_secret":"{secret_value}"}}"#))
        .send()
        .await
        .unwrap();
    let out = run(&["show"], &other);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("not a key-set document"), "{}", text(&out));
    assert!(!text(&out).contains(secret_value), "{}", text(&out));
}

#[tokio::test]
async fn command_line_mistakes_are_usage_errors() {
    for args in [vec!["init", "--name", "no-slash"], vec!["show", "--name", "/a//b"], vec!["promote", "--name", "/a"]] {
        let out = Command::new(env!("CARGO_BIN_EXE_brokerctl"))
            .arg("context-key")
            .args(&args)
            .args(["--endpoint", &moto::endpoint(), "--region", moto::REGION])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(64), "{args:?}: {}", text(&out));
    }
    let name = name();
    let out = run(&["init", "--key-id", "has space"], &name);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("key id"), "{}", text(&out));
    let out = run(&["promote", "--key-id", "x", "--settle", "soon"], &name);
    assert_eq!(out.status.code(), Some(64), "{}", text(&out));
}

#[test]
fn help_explains_the_rotation_and_the_waits() {
    let out = Command::new(env!("CARGO_BIN_EXE_brokerctl")).args(["context-key", "--help"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    for needle in ["init", "add", "promote", "retire", "show"] {
        assert!(text(&out).contains(needle), "{needle}: {}", text(&out));
    }
    let out = Command::new(env!("CARGO_BIN_EXE_brokerctl")).args(["context-key", "init", "--help"]).output().unwrap();
    for needle in ["before the first deploy", "--kms-key-id", "SsmKmsKeyArn", "never printed", "Exit codes"] {
        assert!(text(&out).contains(needle), "{needle} missing from:\n{}", text(&out));
    }
    let out = Command::new(env!("CARGO_BIN_EXE_brokerctl")).args(["context-key", "retire", "--help"]).output().unwrap();
    for needle in ["--settle", "CONTEXT_MAC_TTL_SECONDS", "signing key"] {
        assert!(text(&out).contains(needle), "{needle} missing from:\n{}", text(&out));
    }
}
