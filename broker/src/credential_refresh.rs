//! What the handler needs from the credential cache: read an app client's credentials, and read them again from the
//! store when Cognito says the secret we hold is wrong (it was rotated).
//!
//! The credential source itself ([`crate::credentials::CredentialSource`]) only reads; the refresh capability belongs
//! to the cache in front of it ([`CachedCredentials`]). The handler takes this narrow trait so it can do nothing else
//! to the cache, and so tests can count exactly how often a refresh reaches the store.

use std::sync::Arc;

use async_trait::async_trait;

use crate::credentials::{CachedCredentials, ClientCredentials, CredentialError, CredentialSource};

/// Read credentials, and force one fresh read after `invalid_client`.
#[async_trait]
pub trait CredentialProvider: Send + Sync {
    /// The app client's credentials, from the cache when fresh (or stale within bounds while the store is down).
    async fn get(&self, app_client: &str) -> Result<ClientCredentials, CredentialError>;
    /// Cognito refused `rejected`: read the app client's credentials from the store again. Implementations that
    /// cache should refetch only if they still hold `rejected`, so a burst of refusals costs one store read.
    async fn refresh(
        &self,
        app_client: &str,
        rejected: &ClientCredentials,
    ) -> Result<ClientCredentials, CredentialError>;
}

#[async_trait]
impl<S: CredentialSource> CredentialProvider for CachedCredentials<S> {
    async fn get(&self, app_client: &str) -> Result<ClientCredentials, CredentialError> {
        CredentialSource::get(self, app_client).await
    }
    async fn refresh(
        &self,
        app_client: &str,
        rejected: &ClientCredentials,
    ) -> Result<ClientCredentials, CredentialError> {
        self.refresh_rejected(app_client, rejected).await
    }
}

/// A provider with no cache: every read goes to the source, so a refresh is a plain read. For tools and tests that
/// want to see every store call; the Lambda uses [`CachedCredentials`].
pub struct Uncached(pub Arc<dyn CredentialSource>);

#[async_trait]
impl CredentialProvider for Uncached {
    async fn get(&self, app_client: &str) -> Result<ClientCredentials, CredentialError> {
        self.0.get(app_client).await
    }
    async fn refresh(&self, app_client: &str, _: &ClientCredentials) -> Result<ClientCredentials, CredentialError> {
        self.0.get(app_client).await
    }
}
