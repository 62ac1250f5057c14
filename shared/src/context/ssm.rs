//! The context-key document from an SSM SecureString (both functions in Lambda, the local stack on moto).

use async_trait::async_trait;
use aws_sdk_ssm::error::SdkError;
use aws_sdk_ssm::operation::get_parameter::GetParameterError;
use aws_sdk_ssm::types::ParameterType;
use aws_sdk_ssm::Client;
use secrecy::{ExposeSecret, SecretString};

use super::keys::{KeyError, KeySet, KeySource};

/// Reads the key set from one SecureString parameter, with decryption.
#[derive(Debug, Clone)]
pub struct SsmKeySource {
    client: Client,
    name: String,
}

impl SsmKeySource {
    /// A source reading parameter `name` with `client` (whose timeouts are the caller's: see
    /// [`crate::aws::timeouts`]).
    pub fn new(client: Client, name: impl Into<String>) -> Self {
        SsmKeySource { client, name: name.into() }
    }

    /// The parameter name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

#[async_trait]
impl KeySource for SsmKeySource {
    async fn fetch(&self) -> Result<KeySet, KeyError> {
        let out = match self.client.get_parameter().name(&self.name).with_decryption(true).send().await {
            Ok(out) => out,
            Err(SdkError::ServiceError(e)) if matches!(e.err(), GetParameterError::ParameterNotFound(_)) => {
                return Err(KeyError::Unavailable(format!("SSM parameter {} does not exist", self.name)));
            }
            Err(e) => return Err(KeyError::Unavailable(format!("SSM {}: {}", self.name, crate::aws::describe(&e)))),
        };
        let param = out.parameter().ok_or_else(|| KeyError::Unavailable("SSM returned no parameter".into()))?;
        if param.r#type() != Some(&ParameterType::SecureString) {
            return Err(KeyError::Invalid(format!("SSM parameter {} is not a SecureString", self.name)));
        }
        let value = SecretString::from(param.value().unwrap_or_default().to_owned());
        KeySet::parse(value.expose_secret().as_bytes())
    }
}
