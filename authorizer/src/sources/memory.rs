use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{Fetched, ObjectSource, SourceError};

/// An in-memory object whose content tests and the local stack replace at will; each `set` bumps the ETag.
#[derive(Debug, Clone, Default)]
pub struct MemoryObjectSource {
    inner: Arc<Mutex<MemoryState>>,
}

#[derive(Debug, Default)]
struct MemoryState {
    body: Option<Vec<u8>>,
    generation: u64,
    fail: bool,
    fetches: u64,
}

impl MemoryObjectSource {
    /// A source holding `body`.
    pub fn new(body: impl Into<Vec<u8>>) -> Self {
        let s = Self::default();
        s.set(body);
        s
    }

    /// Replaces the content, as an operator's upload would.
    pub fn set(&self, body: impl Into<Vec<u8>>) {
        let mut st = tb_shared::sync::lock(&self.inner);
        st.body = Some(body.into());
        st.generation += 1;
    }

    /// Makes every fetch fail until called again with `false`, to simulate an outage.
    pub fn set_unavailable(&self, fail: bool) {
        tb_shared::sync::lock(&self.inner).fail = fail;
    }

    /// How many fetches were made.
    pub fn fetches(&self) -> u64 {
        tb_shared::sync::lock(&self.inner).fetches
    }
}

#[async_trait]
impl ObjectSource for MemoryObjectSource {
    async fn fetch(&self, etag: Option<&str>) -> Result<Fetched, SourceError> {
        let mut st = tb_shared::sync::lock(&self.inner);
        st.fetches += 1;
        if st.fail {
            return Err(SourceError::Unavailable("simulated outage".into()));
        }
        let tag = format!("gen-{}", st.generation);
        match &st.body {
            None => Err(SourceError::NotFound),
            Some(_) if etag == Some(tag.as_str()) => Ok(Fetched::Unchanged),
            Some(b) => Ok(Fetched::Changed { body: b.clone(), etag: tag }),
        }
    }

    fn describe(&self) -> String {
        "memory".into()
    }
}
