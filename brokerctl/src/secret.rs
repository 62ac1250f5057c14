//! The app-client credentials parameter in SSM, as the broker reads it (`{prefix}/{cognito_client}`, a SecureString
//! holding `{"client_id","client_secret","token_url"}`, `domain_prefix` + `region` instead of `token_url`, or
//! `"upstream": "get_client_token"` with `region` (and `endpoint_url`) for the GetClientToken API):
//! reading a value from standard input, checking it with the broker's own parser, writing and reading the
//! parameter, and the non-secret record of which Cognito secret id the value holds.
//!
//! Why the record lives in the parameter's Description: the broker refuses unknown keys in the value, so the value
//! cannot say which of an app client's (up to two) secrets it holds, and `cognito rotate-secret` must know that to
//! resume safely. The Description is written in the same `PutParameter` call as the value, so the two never
//! disagree. Nothing here prints, logs or returns a secret in an error: SDK failures are described by their kind
//! and service error code only ([`tb_shared::aws::describe`]).

use std::io::Read;
use std::time::SystemTime;

use aws_sdk_ssm::types::{ParameterStringFilter, ParameterType};
use secrecy::{ExposeSecret, SecretString};
use tb_broker::{ClientCredentials, CredentialSource, MemoryCredentialSource};

/// Largest value read from standard input; SSM's standard tier holds 4 KiB, and a credentials document is ~200 bytes.
pub const MAX_INPUT_BYTES: usize = 4096;

/// Marks the Cognito secret id in a parameter's Description: `... (cognito-secret-id=<id>)`.
const SECRET_ID_MARK: &str = "cognito-secret-id=";

/// Why a credentials parameter could not be read, checked or written. No variant carries a secret.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// Standard input, or a name, could not be used.
    #[error("{0}")]
    Input(String),
    /// The broker would refuse this value (the message is the broker's, which never quotes a value).
    #[error("the broker would refuse this value: {0}")]
    Invalid(String),
    /// The parameter exists and overwriting was not asked for.
    #[error("parameter {0} already exists; pass --overwrite to replace its value")]
    Exists(String),
    /// An SSM call failed.
    #[error("SSM {step} {name}: {message}")]
    Aws { step: &'static str, name: String, message: String },
}

/// Reads a credentials value from `input` (standard input): at most [`MAX_INPUT_BYTES`], UTF-8, surrounding
/// whitespace removed.
pub fn read_value(mut input: impl Read) -> Result<SecretString, SecretError> {
    let mut buf = Vec::new();
    let read = input.by_ref().take(MAX_INPUT_BYTES as u64 + 1).read_to_end(&mut buf);
    read.map_err(|e| SecretError::Input(format!("cannot read standard input: {}", e.kind())))?;
    if buf.len() > MAX_INPUT_BYTES {
        return Err(SecretError::Input(format!("standard input holds more than {MAX_INPUT_BYTES} bytes")));
    }
    let text = String::from_utf8(buf).map_err(|_| SecretError::Input("standard input is not UTF-8".into()))?;
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(SecretError::Input(
            "standard input is empty: pipe the credentials JSON in (see --help); it is never taken from the command line"
                .into(),
        ));
    }
    Ok(SecretString::from(trimmed.to_owned()))
}

/// Checks `value` exactly as the broker does when it reads the parameter (`tb_broker`'s own parser, through its
/// in-memory credential source, which parses raw values as SSM's are) and answers the parsed credentials.
pub async fn validate(value: &SecretString) -> Result<ClientCredentials, SecretError> {
    let source = MemoryCredentialSource::new();
    source.insert_raw("check", value.clone());
    source.get("check").await.map_err(|e| SecretError::Invalid(e.to_string()))
}

/// The value with its `client_secret` replaced, every other member kept as it was: what a rotation writes.
/// `value` must already have passed [`validate`].
pub fn with_secret(value: &SecretString, secret: &SecretString) -> Result<SecretString, SecretError> {
    let mut doc: serde_json::Map<String, serde_json::Value> = serde_json::from_str(value.expose_secret())
        .map_err(|_| SecretError::Invalid("the stored value is not a JSON object".into()))?;
    doc.insert("client_secret".into(), serde_json::Value::String(secret.expose_secret().to_owned()));
    Ok(SecretString::from(serde_json::Value::Object(doc).to_string()))
}

/// Checks a parameter path prefix the way the broker checks `SSM_PREFIX`: `/`-rooted, no trailing `/`.
pub fn check_prefix(prefix: &str) -> Result<(), SecretError> {
    let ok = tb_broker::is_valid_ssm_prefix(prefix);
    if ok {
        Ok(())
    } else {
        Err(SecretError::Input(
            "--prefix must look like /token-broker/cognito (A-Z a-z 0-9 / _ . -, no trailing /)".into(),
        ))
    }
}

/// The broker's parameter name for `cognito_client` under `prefix`; the client name follows the broker's rule for
/// the last path segment.
pub fn parameter_name(prefix: &str, cognito_client: &str) -> Result<String, SecretError> {
    check_prefix(prefix)?;
    let ok = !cognito_client.is_empty()
        && cognito_client.len() <= 128
        && !cognito_client.starts_with('.')
        && cognito_client.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if !ok {
        return Err(SecretError::Input(format!(
            "app client name {cognito_client:?} cannot be a parameter name (1-128 of A-Z a-z 0-9 _ . -, not starting with .)"
        )));
    }
    Ok(format!("{prefix}/{cognito_client}"))
}

/// The Description written with a credentials value: says what the parameter is and, when known, which Cognito
/// secret id the value holds.
pub fn description(secret_id: Option<&str>) -> String {
    match secret_id {
        Some(id) => format!("token-broker Cognito app-client credentials ({SECRET_ID_MARK}{id})"),
        None => "token-broker Cognito app-client credentials (cognito secret id not recorded)".to_owned(),
    }
}

/// The Cognito secret id recorded in a Description by [`description`], if any.
pub fn recorded_secret_id(description: &str) -> Option<String> {
    let start = description.find(SECRET_ID_MARK)? + SECRET_ID_MARK.len();
    let id: String = description[start..].chars().take_while(|c| !c.is_whitespace() && *c != ')').collect();
    (!id.is_empty()).then_some(id)
}

/// What SSM says about a parameter besides its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParameterInfo {
    pub description: Option<String>,
    pub key_id: Option<String>,
    pub last_modified: Option<SystemTime>,
    pub version: i64,
    pub secure: bool,
}

/// How [`put`] writes.
#[derive(Debug, Clone, Default)]
pub struct PutOptions {
    /// KMS key of the SecureString; `None` is SSM's default key for a new parameter. Overwriting does not keep a
    /// parameter's key by itself: pass it again.
    pub kms_key_id: Option<String>,
    /// Replace an existing value (a new parameter version); without it an existing parameter is refused.
    pub overwrite: bool,
    /// The Description ([`description`]); SSM keeps the old Description on overwrite when none is sent.
    pub description: String,
}

fn aws_error<E: aws_sdk_ssm::error::ProvideErrorMetadata, R>(
    step: &'static str,
    name: &str,
) -> impl FnOnce(aws_sdk_ssm::error::SdkError<E, R>) -> SecretError {
    let name = name.to_owned();
    move |e| SecretError::Aws { step, name, message: tb_shared::aws::describe(&e) }
}

/// Writes `value` to `name` as a SecureString; answers the new parameter version.
pub async fn put(
    ssm: &aws_sdk_ssm::Client,
    name: &str,
    value: &SecretString,
    opts: &PutOptions,
) -> Result<i64, SecretError> {
    let res = ssm
        .put_parameter()
        .name(name)
        .r#type(ParameterType::SecureString)
        .value(value.expose_secret())
        .overwrite(opts.overwrite)
        .description(&opts.description)
        .set_key_id(opts.kms_key_id.clone())
        .send()
        .await;
    match res {
        Ok(out) => Ok(out.version()),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_parameter_already_exists()) => {
            Err(SecretError::Exists(name.to_owned()))
        }
        Err(e) => Err(aws_error("writing", name)(e)),
    }
}

/// The decrypted value of `name`, or `None` when there is no such parameter.
pub async fn get(ssm: &aws_sdk_ssm::Client, name: &str) -> Result<Option<SecretString>, SecretError> {
    match ssm.get_parameter().name(name).with_decryption(true).send().await {
        Ok(out) => Ok(out.parameter().and_then(|p| p.value()).map(|v| SecretString::from(v.to_owned()))),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_parameter_not_found()) => Ok(None),
        Err(e) => Err(aws_error("reading", name)(e)),
    }
}

/// What SSM holds about `name` (not its value), or `None` when there is no such parameter.
pub async fn info(ssm: &aws_sdk_ssm::Client, name: &str) -> Result<Option<ParameterInfo>, SecretError> {
    let filter = ParameterStringFilter::builder()
        .key("Name")
        .option("Equals")
        .values(name)
        .build()
        .map_err(|_| SecretError::Input(format!("cannot look up parameter {name}")))?;
    let out =
        ssm.describe_parameters().parameter_filters(filter).send().await.map_err(aws_error("describing", name))?;
    Ok(out.parameters().iter().find(|p| p.name() == Some(name)).map(|p| ParameterInfo {
        description: p.description().map(str::to_owned),
        key_id: p.key_id().map(str::to_owned),
        last_modified: p.last_modified_date().and_then(|d| SystemTime::try_from(*d).ok()),
        version: p.version(),
        secure: p.r#type() == Some(&ParameterType::SecureString),
    }))
}

/// Deletes `name`; a parameter that is already gone is fine.
pub async fn delete(ssm: &aws_sdk_ssm::Client, name: &str) -> Result<(), SecretError> {
    match ssm.delete_parameter().name(name).send().await {
        Ok(_) => Ok(()),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_parameter_not_found()) => Ok(()),
        Err(e) => Err(aws_error("deleting", name)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "s3cr3t-in-the-test-value";

    #[test]
    fn description_round_trips_the_secret_id() {
        let d = description(Some("abc123--1700000000000"));
        assert_eq!(recorded_secret_id(&d).as_deref(), Some("abc123--1700000000000"));
        assert_eq!(recorded_secret_id(&description(None)), None);
        assert_eq!(recorded_secret_id("cognito-secret-id=)"), None);
        assert_eq!(recorded_secret_id("anything"), None);
    }

    #[test]
    fn standard_input_is_capped_trimmed_and_never_empty() {
        let v = read_value(&b"  {\"a\":1}\n"[..]).unwrap();
        assert_eq!(v.expose_secret(), "{\"a\":1}");
        assert!(matches!(read_value(&b" \n"[..]), Err(SecretError::Input(_))));
        assert!(matches!(read_value(&[0xff, 0xfe][..]), Err(SecretError::Input(_))));
        let big = vec![b'x'; MAX_INPUT_BYTES + 1];
        assert!(matches!(read_value(&big[..]), Err(SecretError::Input(_))));
        assert!(read_value(&vec![b'x'; MAX_INPUT_BYTES][..]).is_ok());
    }

    #[tokio::test]
    async fn validation_is_the_brokers_and_quotes_no_secret() {
        let ok =
            format!(r#"{{"client_id":"abc","client_secret":"{SECRET}","token_url":"https://x.example/oauth2/token"}}"#);
        let c = validate(&SecretString::from(ok.clone())).await.unwrap();
        assert_eq!(c.client_id, "abc");
        for bad in [
            format!(
                r#"{{"client_id":"abc","client_secret":"{SECRET}","token_url":"https://x.example/t","tokenurl":1}}"#
            ),
            format!(r#"{{"client_id":"abc","client_secret":"{SECRET}"}}"#),
            format!(r#"{{"client_id":"abc","client_secret":"{SECRET}","token_url":"http://x.example/t"}}"#),
            SECRET.to_owned(),
        ] {
            let e = validate(&SecretString::from(bad)).await.unwrap_err();
            assert!(matches!(e, SecretError::Invalid(_)), "{e}");
            assert!(!format!("{e} {e:?}").contains(SECRET));
        }
        let rotated = with_secret(&SecretString::from(ok), &SecretString::from("new-value".to_owned())).unwrap();
        let c = validate(&rotated).await.unwrap();
        assert_eq!(c.client_secret.expose_secret(), "new-value");
        assert_eq!(c.upstream.to_string(), "https://x.example/oauth2/token");
    }

    #[test]
    fn names_follow_the_brokers_rules() {
        assert_eq!(parameter_name("/tb/cognito", "orders").unwrap(), "/tb/cognito/orders");
        for p in ["tb", "/tb/", "/", "/a//b", "/a b"] {
            assert!(parameter_name(p, "orders").is_err(), "{p}");
        }
        for c in ["", ".hidden", "a/b", "a b", &"c".repeat(129)] {
            assert!(parameter_name("/tb", c).is_err(), "{c}");
        }
    }
}
