//! Credentials from SSM Parameter Store: one SecureString per app client at `{prefix}/{app_client}`.
//!
//! Read with `WithDecryption=true`; a parameter that is not a SecureString is refused, so a secret stored in plain
//! text is noticed rather than used. IAM: `ssm:GetParameter` on `arn:aws:ssm:{region}:{account}:parameter{prefix}/*`
//! and `kms:Decrypt` on the parameters' key.
//!
//! Every call carries an SDK operation timeout (default 1.5 s, retries included): SSM being slow or unreachable
//! becomes [`CredentialError::Unavailable`] quickly, and the cache in front of this source decides whether a stale
//! value may be served instead.

use std::time::Duration;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_ssm::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ssm::operation::get_parameter::GetParameterError;
use aws_sdk_ssm::types::ParameterType;
use aws_sdk_ssm::Client;
use secrecy::SecretString;

use super::{parse_parameter, ClientCredentials, CredentialError, CredentialSource};

/// Longest app-client name accepted as the last path segment.
const MAX_APP_CLIENT_LEN: usize = 128;

/// Where and how to read the parameters.
#[derive(Debug, Clone)]
pub struct SsmConfig {
    /// Path prefix, e.g. `/token-broker/cognito`: starts with `/`, no trailing `/`.
    pub prefix: String,
    /// Upper bound of one GetParameter including SDK retries; applied by [`SsmCredentialSource::from_sdk_config`].
    pub operation_timeout: Duration,
}

impl SsmConfig {
    /// A prefix with the default timeout.
    pub fn new(prefix: impl Into<String>) -> Self {
        Self { prefix: prefix.into(), operation_timeout: tb_shared::aws::DEFAULT_OPERATION_TIMEOUT }
    }
}

/// [`CredentialSource`] on SSM Parameter Store.
#[derive(Debug, Clone)]
pub struct SsmCredentialSource {
    client: Client,
    prefix: String,
}

/// The SSM client configuration the source wants: the shared SDK config with the operation timeout applied (each
/// attempt gets half, so one stalled attempt still leaves room for a retry).
pub(crate) fn client_config(sdk: &SdkConfig, operation_timeout: Duration) -> aws_sdk_ssm::Config {
    aws_sdk_ssm::config::Builder::from(sdk).timeout_config(tb_shared::aws::timeouts(operation_timeout)).build()
}

/// Whether `prefix` is a parameter path prefix the broker accepts for `SSM_PREFIX`: `/`-rooted, no trailing or
/// doubled `/`, SSM's name characters only. Public so operator tooling that writes parameters (`brokerctl secret
/// put`) refuses exactly what the broker would.
pub fn is_valid_prefix(prefix: &str) -> bool {
    prefix.len() >= 2
        && prefix.len() <= 512
        && prefix.starts_with('/')
        && !prefix.ends_with('/')
        && !prefix.contains("//")
        && prefix.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'.' | b'-'))
}

/// Checks the prefix at cold start so a misconfiguration fails the deployment, not every request.
fn check_prefix(prefix: &str) -> Result<(), CredentialError> {
    if is_valid_prefix(prefix) {
        Ok(())
    } else {
        Err(CredentialError::Malformed(
            "SSM prefix must look like /token-broker/cognito (A-Z a-z 0-9 / _ . -, no trailing /)".into(),
        ))
    }
}

impl SsmCredentialSource {
    /// Builds the client from the shared SDK config with the timeout applied. Use this in `main`.
    pub fn from_sdk_config(sdk: &SdkConfig, config: SsmConfig) -> Result<Self, CredentialError> {
        check_prefix(&config.prefix)?;
        Ok(Self { client: Client::from_conf(client_config(sdk, config.operation_timeout)), prefix: config.prefix })
    }

    /// Uses a client built elsewhere; its timeouts are the caller's business (see [`client_config`]).
    pub fn with_client(client: Client, prefix: impl Into<String>) -> Result<Self, CredentialError> {
        let prefix = prefix.into();
        check_prefix(&prefix)?;
        Ok(Self { client, prefix })
    }

    /// The parameter name for an app client.
    pub fn parameter_name(&self, app_client: &str) -> String {
        format!("{}/{}", self.prefix, app_client)
    }
}

#[async_trait]
impl CredentialSource for SsmCredentialSource {
    async fn get(&self, app_client: &str) -> Result<ClientCredentials, CredentialError> {
        // The name comes from the policy, but it becomes part of an SSM path: no `/` or `..` tricks into another
        // parameter. A name that cannot exist has no credentials.
        if app_client.is_empty()
            || app_client.len() > MAX_APP_CLIENT_LEN
            || app_client.starts_with('.')
            || !app_client.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        {
            return Err(CredentialError::NotFound);
        }
        let res = self.client.get_parameter().name(self.parameter_name(app_client)).with_decryption(true).send().await;
        let out = match res {
            Ok(out) => out,
            Err(SdkError::ServiceError(e)) => {
                return Err(match e.into_err() {
                    GetParameterError::ParameterNotFound(_) | GetParameterError::ParameterVersionNotFound(_) => {
                        CredentialError::NotFound
                    }
                    other => {
                        CredentialError::Unavailable(format!("SSM service error {}", other.code().unwrap_or("unknown")))
                    }
                });
            }
            Err(e) => return Err(CredentialError::Unavailable(format!("SSM: {}", tb_shared::aws::describe(&e)))),
        };
        let param = out.parameter().ok_or(CredentialError::NotFound)?;
        if param.r#type() != Some(&ParameterType::SecureString) {
            return Err(CredentialError::Malformed("parameter is not a SecureString".into()));
        }
        let value = SecretString::from(param.value().unwrap_or_default().to_owned());
        parse_parameter(&value)
    }
}
