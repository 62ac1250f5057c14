use std::path::PathBuf;

use async_trait::async_trait;
use sha2::{Digest, Sha256};

use super::{Fetched, ObjectSource, SourceError, MAX_OBJECT_BYTES};

/// An object on the local file system; its ETag is the SHA-256 of its content, so an edit is a change.
/// Used by the local stack, and by deployments that bundle the truststore with the function.
#[derive(Debug, Clone)]
pub struct FileObjectSource {
    path: PathBuf,
}

impl FileObjectSource {
    /// A source reading `path` on each fetch.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileObjectSource { path: path.into() }
    }
}

#[async_trait]
impl ObjectSource for FileObjectSource {
    async fn fetch(&self, etag: Option<&str>) -> Result<Fetched, SourceError> {
        let body = match tokio::fs::read(&self.path).await {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(SourceError::NotFound),
            Err(e) => return Err(SourceError::Unavailable(e.kind().to_string())),
        };
        if body.len() > MAX_OBJECT_BYTES {
            return Err(SourceError::TooLarge(MAX_OBJECT_BYTES));
        }
        let tag = hex::encode(Sha256::digest(&body));
        if etag == Some(tag.as_str()) {
            return Ok(Fetched::Unchanged);
        }
        Ok(Fetched::Changed { body, etag: tag })
    }

    fn describe(&self) -> String {
        format!("file {}", self.path.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn file_changes_are_seen_by_etag() {
        let dir = tempfile::Builder::new().prefix("tb-file-src-").tempdir().unwrap();
        let path = dir.path().join("bundle.pem");
        std::fs::write(&path, b"one").unwrap();
        let src = FileObjectSource::new(&path);
        let Fetched::Changed { body, etag } = src.fetch(None).await.unwrap() else {
            panic!("first fetch must return the body")
        };
        assert_eq!(body, b"one");
        assert_eq!(src.fetch(Some(&etag)).await.unwrap(), Fetched::Unchanged);
        std::fs::write(&path, b"two").unwrap();
        assert!(matches!(src.fetch(Some(&etag)).await.unwrap(), Fetched::Changed { .. }));
        std::fs::remove_file(&path).unwrap();
        assert_eq!(src.fetch(Some(&etag)).await, Err(SourceError::NotFound));
    }
}
