use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use tb_shared::http::{read_capped, BodyError};

use super::{JwksFetcher, SourceError};

/// Largest JWKS document accepted; real ones are a few KiB.
pub(crate) const MAX_JWKS_BYTES: usize = 256 * 1024;

/// Settings of the HTTPS JWKS client.
#[derive(Debug, Clone)]
pub struct JwksFetcherConfig {
    /// TCP + TLS connect timeout.
    pub connect_timeout: Duration,
    /// Whole-request timeout: a slow JWKS endpoint must not hold a request for long.
    pub timeout: Duration,
    /// Extra root certificates (PEM) to trust, for a local development JWKS server.
    pub extra_roots_pem: Vec<Vec<u8>>,
}

impl Default for JwksFetcherConfig {
    fn default() -> Self {
        JwksFetcherConfig {
            connect_timeout: Duration::from_secs(1),
            timeout: Duration::from_secs(2),
            extra_roots_pem: Vec::new(),
        }
    }
}

/// Fetches JWKS documents over HTTPS with reqwest on rustls. Redirects are not followed (a redirect could move the
/// key source somewhere the operator never configured), bodies are capped, and only URLs from the policy reach it.
#[derive(Debug, Clone)]
pub struct HttpJwksFetcher {
    client: reqwest::Client,
}

impl HttpJwksFetcher {
    /// Builds the client once; reuse it for the process lifetime.
    pub fn new(cfg: &JwksFetcherConfig) -> Result<Self, SourceError> {
        let mut b = reqwest::Client::builder()
            .connect_timeout(cfg.connect_timeout)
            .timeout(cfg.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("token-broker-authorizer");
        for pem in &cfg.extra_roots_pem {
            let cert = reqwest::Certificate::from_pem(pem)
                .map_err(|e| SourceError::Unavailable(format!("bad extra root: {e}")))?;
            b = b.add_root_certificate(cert);
        }
        let client = b.build().map_err(|e| SourceError::Unavailable(format!("http client: {e}")))?;
        Ok(HttpJwksFetcher { client })
    }
}

#[async_trait]
impl JwksFetcher for HttpJwksFetcher {
    async fn fetch(&self, url: &str) -> Result<Vec<u8>, SourceError> {
        let mut resp = self
            .client
            .get(url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| SourceError::Unavailable(classify(&e)))?;
        if !resp.status().is_success() {
            return Err(SourceError::Unavailable(format!("status {}", resp.status().as_u16())));
        }
        read_capped(&mut resp, MAX_JWKS_BYTES).await.map_err(|e| match e {
            BodyError::TooLarge => SourceError::TooLarge(MAX_JWKS_BYTES),
            BodyError::Timeout => SourceError::Unavailable("timeout".into()),
            BodyError::Io => SourceError::Unavailable("request failed".into()),
        })
    }
}

fn classify(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout".into()
    } else if e.is_connect() {
        "connect failed".into()
    } else {
        "request failed".into()
    }
}

/// JWKS documents served from memory, with a fetch counter and an outage switch, for tests and benchmarks.
#[derive(Debug, Clone, Default)]
pub struct MemoryJwksFetcher {
    inner: Arc<Mutex<MemoryJwks>>,
}

#[derive(Debug, Default)]
struct MemoryJwks {
    docs: HashMap<String, Vec<u8>>,
    fetches: u64,
    down: bool,
}

impl MemoryJwksFetcher {
    /// Serves `doc` at `url`.
    pub fn set(&self, url: &str, doc: impl Into<Vec<u8>>) {
        self.lock().docs.insert(url.to_owned(), doc.into());
    }
    /// Simulates the JWKS endpoint being down.
    pub fn set_down(&self, down: bool) {
        self.lock().down = down;
    }
    /// Fetches made so far.
    pub fn fetches(&self) -> u64 {
        self.lock().fetches
    }
    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryJwks> {
        tb_shared::sync::lock(&self.inner)
    }
}

#[async_trait]
impl JwksFetcher for MemoryJwksFetcher {
    async fn fetch(&self, url: &str) -> Result<Vec<u8>, SourceError> {
        let mut st = self.lock();
        st.fetches += 1;
        if st.down {
            return Err(SourceError::Unavailable("simulated outage".into()));
        }
        st.docs.get(url).cloned().ok_or(SourceError::NotFound)
    }
}
