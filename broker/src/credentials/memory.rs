//! Credentials from an in-memory map, for unit tests and the local stack.
//!
//! Behaves like the SSM source (raw values are parsed on every read, as SSM values are) and adds what tests need:
//! a call counter (to prove the cache's single flight), an outage switch and an artificial delay (to make concurrent
//! misses overlap the way a real network call does).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use secrecy::SecretString;

use super::{parse_parameter, ClientCredentials, CredentialError, CredentialSource};

#[derive(Clone)]
enum Stored {
    Parsed(ClientCredentials),
    /// A parameter value as an operator would write it to SSM, parsed on read.
    Raw(SecretString),
}

/// In-memory [`CredentialSource`].
#[derive(Default)]
pub struct MemoryCredentialSource {
    entries: Mutex<HashMap<String, Stored>>,
    calls: AtomicUsize,
    unavailable: AtomicBool,
    delay: Mutex<Duration>,
}

impl MemoryCredentialSource {
    /// An empty source.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets (or replaces, e.g. to simulate rotation) an app client's credentials.
    pub fn insert(&self, app_client: &str, creds: ClientCredentials) {
        self.lock_entries().insert(app_client.to_owned(), Stored::Parsed(creds));
    }

    /// Sets an app client's raw parameter value (the SSM JSON); it is parsed on each read, so a malformed value
    /// answers [`CredentialError::Malformed`] just as SSM's would.
    pub fn insert_raw(&self, app_client: &str, value: SecretString) {
        self.lock_entries().insert(app_client.to_owned(), Stored::Raw(value));
    }

    /// Removes an app client.
    pub fn remove(&self, app_client: &str) {
        self.lock_entries().remove(app_client);
    }

    /// While set, every read answers [`CredentialError::Unavailable`] (still counted as a call).
    pub fn set_unavailable(&self, down: bool) {
        self.unavailable.store(down, Ordering::SeqCst);
    }

    /// Makes every read take this long before answering.
    pub fn set_delay(&self, delay: Duration) {
        *tb_shared::sync::lock(&self.delay) = delay;
    }

    /// Reads made so far (successful or not).
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn lock_entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, Stored>> {
        // Entries are replaced whole, so a poisoned map is still consistent.
        tb_shared::sync::lock(&self.entries)
    }
}

#[async_trait]
impl CredentialSource for MemoryCredentialSource {
    async fn get(&self, app_client: &str) -> Result<ClientCredentials, CredentialError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let delay = *tb_shared::sync::lock(&self.delay);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if self.unavailable.load(Ordering::SeqCst) {
            return Err(CredentialError::Unavailable("in-memory credential source switched off".into()));
        }
        let stored = self.lock_entries().get(app_client).cloned();
        match stored {
            Some(Stored::Parsed(c)) => Ok(c),
            Some(Stored::Raw(v)) => parse_parameter(&v),
            None => Err(CredentialError::NotFound),
        }
    }
}
