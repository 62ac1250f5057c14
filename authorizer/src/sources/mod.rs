//! Narrow traits for the outside systems the authorizer reads, each with a real implementation and an in-memory
//! one for tests and the local stack.
//!
//! - [`ObjectSource`]: a versioned blob (the truststore bundle, a CRL bundle) fetched only when its ETag changed,
//!   so an operator's rotation in S3 takes effect on the next refresh without a redeploy.
//! - [`JwksFetcher`]: a partner's JWKS document over HTTPS.

mod file;
mod jwks;
mod memory;
mod s3;

use async_trait::async_trait;

pub use file::FileObjectSource;
pub use jwks::{HttpJwksFetcher, JwksFetcherConfig, MemoryJwksFetcher};
pub use memory::MemoryObjectSource;
pub use s3::{s3_client, S3ObjectSource, S3_OPERATION_TIMEOUT};

/// Largest object accepted from a source: a truststore or CRL bundle is kilobytes; more is an error, not data.
pub(crate) const MAX_OBJECT_BYTES: usize = 4 * 1024 * 1024;

/// Result of a conditional fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// The object still has the ETag the caller holds.
    Unchanged,
    /// The object changed (or was fetched for the first time).
    Changed {
        /// The object's bytes.
        body: Vec<u8>,
        /// Its ETag, to send back on the next fetch.
        etag: String,
    },
}

/// Why a source could not answer. The message names no bucket, key or URL, because it can reach logs that callers'
/// operators read; the source's `describe()` is logged separately at start-up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[allow(missing_docs)] // each variant is documented by its #[error] text
pub enum SourceError {
    #[error("object not found")]
    NotFound,
    #[error("object larger than {0} bytes")]
    TooLarge(usize),
    #[error("source unavailable: {0}")]
    Unavailable(String),
}

/// A blob that changes rarely and is re-read cheaply when it does.
#[async_trait]
pub trait ObjectSource: Send + Sync {
    /// Fetches the object unless its ETag still equals `etag`.
    async fn fetch(&self, etag: Option<&str>) -> Result<Fetched, SourceError>;
    /// Where the object lives, for start-up logs.
    fn describe(&self) -> String;
}

/// Fetches a JWKS document by URL.
#[async_trait]
pub trait JwksFetcher: Send + Sync {
    /// The raw JWKS bytes at `url`.
    async fn fetch(&self, url: &str) -> Result<Vec<u8>, SourceError>;
}
