//! The Cognito app-client credentials the broker authenticates with, one SSM SecureString per app client.
//!
//! The parameter value is JSON: `{"client_id": "...", "client_secret": "...", "token_url": "https://..."}`, or
//! instead of `token_url` a `domain_prefix` plus `region` (seed 004 allows both; `token_url` wins when both are set).

use async_trait::async_trait;
use secrecy::SecretString;

/// One app client's credentials. `Debug` never shows the secret (it is a [`SecretString`]).
#[derive(Debug, Clone)]
pub struct ClientCredentials {
    pub client_id: String,
    pub client_secret: SecretString,
    pub token_url: url::Url,
}

/// Why credentials could not be had. Messages never contain the parameter value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error("credential store unavailable: {0}")]
    Unavailable(String),
    #[error("no credentials configured for this app client")]
    NotFound,
    #[error("credential parameter is malformed: {0}")]
    Malformed(String),
}

/// Reads an app client's credentials by the name the policy gives (`cognito_client`).
#[async_trait]
pub trait CredentialSource: Send + Sync {
    async fn get(&self, app_client: &str) -> Result<ClientCredentials, CredentialError>;
}
