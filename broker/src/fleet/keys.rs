//! Data keys for the fleet cache's envelope encryption: made and opened by KMS, kept briefly in memory.
//!
//! A writer asks KMS for a data key (`GenerateDataKey`, AES-256) under the item's [`EncryptionContext`] and reuses
//! it for that context for [`DATA_KEY_TTL`], so a burst of writes costs one KMS call. A reader asks KMS to decrypt
//! an item's encrypted data key under the context of its own request (`Decrypt`, with the key id pinned, so an item
//! sealed under any other key is refused) and keeps the answer for the same time, keyed by the encrypted key *and*
//! the context: a cached data key is never used for a request whose context KMS has not accepted for it.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_kms::error::ProvideErrorMetadata as _;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;
use moka::future::Cache;
use sha2::{Digest as _, Sha256};
use zeroize::Zeroize as _;

use super::sealed::{DataKey, EncryptionContext};

/// How long a data key is used and kept after KMS gave it.
pub(crate) const DATA_KEY_TTL: Duration = Duration::from_secs(300);
/// Bound on remembered data keys (one per context written or item read in the last few minutes).
const MAX_KEYS: u64 = 1024;

/// Why KMS gave no data key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The encrypted key does not open under this key and context: the item was not made for this request, or was
    /// altered. The item is treated as absent.
    #[error("the data key does not decrypt under this context")]
    Refused,
    /// KMS could not be asked (down, slow, throttling, or no permission). The cache is then bypassed for a while.
    #[error("KMS unavailable: {0}")]
    Unavailable(String),
}

/// Where data keys come from. The KMS adapter is [`KmsDataKeys`]; tests put faults in front of it.
#[async_trait]
pub trait DataKeySource: Send + Sync {
    /// A fresh data key under `context`: its plaintext and its encrypted form.
    async fn generate(&self, context: &[(&'static str, &str)]) -> Result<(Vec<u8>, Vec<u8>), KeyError>;
    /// The plaintext of `encrypted` under `context`.
    async fn decrypt(&self, encrypted: &[u8], context: &[(&'static str, &str)]) -> Result<Vec<u8>, KeyError>;
}

/// [`DataKeySource`] on AWS KMS, with one symmetric key.
#[derive(Debug, Clone)]
pub struct KmsDataKeys {
    client: aws_sdk_kms::Client,
    key_id: String,
}

impl KmsDataKeys {
    /// A client on the shared SDK config, each operation bounded by `timeout` (retries included).
    pub fn from_sdk_config(sdk: &SdkConfig, key_id: impl Into<String>, timeout: Duration) -> Self {
        let conf = aws_sdk_kms::config::Builder::from(sdk).timeout_config(tb_shared::aws::timeouts(timeout)).build();
        KmsDataKeys { client: aws_sdk_kms::Client::from_conf(conf), key_id: key_id.into() }
    }
}

fn context_map(context: &[(&'static str, &str)]) -> std::collections::HashMap<String, String> {
    context.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

#[async_trait]
impl DataKeySource for KmsDataKeys {
    async fn generate(&self, context: &[(&'static str, &str)]) -> Result<(Vec<u8>, Vec<u8>), KeyError> {
        let out = self
            .client
            .generate_data_key()
            .key_id(&self.key_id)
            .key_spec(DataKeySpec::Aes256)
            .set_encryption_context(Some(context_map(context)))
            .send()
            .await
            .map_err(|e| KeyError::Unavailable(format!("GenerateDataKey {}", tb_shared::aws::describe(&e))))?;
        match (out.plaintext, out.ciphertext_blob) {
            (Some(p), Some(c)) => Ok((p.into_inner(), c.into_inner())),
            _ => Err(KeyError::Unavailable("GenerateDataKey answered without a key".into())),
        }
    }

    async fn decrypt(&self, encrypted: &[u8], context: &[(&'static str, &str)]) -> Result<Vec<u8>, KeyError> {
        let out = self
            .client
            .decrypt()
            .key_id(&self.key_id)
            .ciphertext_blob(Blob::new(encrypted))
            .set_encryption_context(Some(context_map(context)))
            .send()
            .await
            .map_err(|e| match decrypt_refusal(e.as_service_error().and_then(|s| s.code())) {
                Some(refused) => refused,
                None => KeyError::Unavailable(format!("Decrypt {}", tb_shared::aws::describe(&e))),
            })?;
        out.plaintext
            .map(Blob::into_inner)
            .ok_or_else(|| KeyError::Unavailable("Decrypt answered without a key".into()))
    }
}

/// The `Decrypt` errors that are the item's fault, not KMS's: the blob was altered or is malformed
/// (`InvalidCiphertextException`, `ValidationException`), or was made under another key or context
/// (`IncorrectKeyException`: the key id is pinned, so an item sealed under a replaced key says so). The item is then
/// treated as absent and overwritten. Anything else makes the cache unavailable, and it is skipped for a while:
/// `AccessDeniedException` (this function may no longer use the key: the cache was revoked), a disabled or deleted
/// key, throttling, KMS down.
fn decrypt_refusal(code: Option<&str>) -> Option<KeyError> {
    matches!(code, Some("InvalidCiphertextException" | "IncorrectKeyException" | "ValidationException"))
        .then_some(KeyError::Refused)
}

struct Writing {
    key: Arc<DataKey>,
    encrypted: Vec<u8>,
}

/// The data keys of one function instance, in front of their source.
#[derive(Clone)]
pub(crate) struct DataKeys {
    source: Arc<dyn DataKeySource>,
    /// Per context: the data key new items are sealed with.
    writing: Cache<EncryptionContext, Arc<Writing>>,
    /// Per (digest of the encrypted key, context): the data key KMS decrypted for it.
    opened: Cache<([u8; 32], EncryptionContext), Arc<DataKey>>,
}

impl DataKeys {
    pub(crate) fn new(source: Arc<dyn DataKeySource>) -> Self {
        DataKeys {
            source,
            writing: Cache::builder().max_capacity(MAX_KEYS).time_to_live(DATA_KEY_TTL).build(),
            opened: Cache::builder().max_capacity(MAX_KEYS).time_to_live(DATA_KEY_TTL).build(),
        }
    }

    /// The data key to seal with under `context`, and its encrypted form.
    pub(crate) async fn for_writing(&self, context: &EncryptionContext) -> Result<(Arc<DataKey>, Vec<u8>), KeyError> {
        if let Some(w) = self.writing.get(context).await {
            return Ok((self.remember(&w.encrypted, context, w.key.clone()).await, w.encrypted.clone()));
        }
        let pairs: Vec<_> = context.pairs().collect();
        let (mut plain, encrypted) = self.source.generate(&pairs).await?;
        let key = DataKey::from_bytes(&plain);
        plain.zeroize();
        let key = key.ok_or_else(|| KeyError::Unavailable("a data key of the wrong size".into()))?;
        let key = Arc::new(key);
        let opened = self.remember(&encrypted, context, key.clone()).await;
        self.writing.insert(context.clone(), Arc::new(Writing { key, encrypted: encrypted.clone() })).await;
        Ok((opened, encrypted))
    }

    /// The writer knows its own data key: reading its own items back costs no `Decrypt`.
    async fn remember(&self, encrypted: &[u8], context: &EncryptionContext, key: Arc<DataKey>) -> Arc<DataKey> {
        let id = (digest(encrypted), context.clone());
        if let Some(k) = self.opened.get(&id).await {
            return k;
        }
        self.opened.insert(id, key.clone()).await;
        key
    }

    /// The data key of an item read for a request with `context`.
    pub(crate) async fn for_reading(
        &self,
        encrypted: &[u8],
        context: &EncryptionContext,
    ) -> Result<Arc<DataKey>, KeyError> {
        let id = (digest(encrypted), context.clone());
        if let Some(k) = self.opened.get(&id).await {
            return Ok(k);
        }
        let pairs: Vec<_> = context.pairs().collect();
        let mut plain = self.source.decrypt(encrypted, &pairs).await?;
        let key = DataKey::from_bytes(&plain);
        plain.zeroize();
        let key = Arc::new(key.ok_or(KeyError::Refused)?);
        self.opened.insert(id, key.clone()).await;
        Ok(key)
    }
}

fn digest(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_items_faults_are_refusals() {
        for code in ["InvalidCiphertextException", "IncorrectKeyException", "ValidationException"] {
            assert_eq!(decrypt_refusal(Some(code)), Some(KeyError::Refused), "{code}");
        }
        for code in [
            Some("AccessDeniedException"),
            Some("DisabledException"),
            Some("KMSInvalidStateException"),
            Some("NotFoundException"),
            Some("ThrottlingException"),
            None,
        ] {
            assert_eq!(decrypt_refusal(code), None, "{code:?}");
        }
    }
}
