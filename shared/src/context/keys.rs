//! The context-MAC keys: the key-set document both functions read from one SSM SecureString, and the [`KeyRing`]
//! that keeps it fresh in a warm instance.
//!
//! The document is JSON: `{"signing_key_id": "2026-12", "keys": {"2026-12": "<base64 of 32-64 random bytes>"}}`,
//! with one or two keys. The authorizer signs with `signing_key_id`; the broker accepts a MAC made with any key in
//! `keys`. A rotation therefore goes: add the new key beside the old one (both accepted), let every instance load
//! it, make it the signing key, let every context signed with the old one expire, remove the old one. Unknown
//! members, a signing id that is not a key, a third key, short keys and odd ids are refused, so a typo cannot
//! silently weaken the check.
//!
//! No key byte ever reaches a log, an error or `Debug` output.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use serde::Deserialize;

use crate::clock::Clock;

/// Longest key id.
pub const MAX_KEY_ID_LEN: usize = 64;
/// Shortest key: HMAC-SHA256's own output size; shorter keys weaken it.
pub const MIN_KEY_BYTES: usize = 32;
/// Longest key: HMAC-SHA256's block size (a longer key is hashed down first, gaining nothing).
pub const MAX_KEY_BYTES: usize = 64;
/// Most keys a set holds: the current one and, during a rotation, one other.
pub const MAX_KEYS: usize = 2;
/// Largest key-set document read (two keys take well under 1 KiB).
const MAX_DOCUMENT_BYTES: usize = 4096;

/// One key: its id (not secret, carried in every context) and its bytes (secret).
pub struct ContextKey {
    id: String,
    secret: SecretBox<[u8]>,
}

impl ContextKey {
    /// The key id.
    pub fn id(&self) -> &str {
        &self.id
    }
    pub(super) fn secret_bytes(&self) -> &[u8] {
        self.secret.expose_secret()
    }
}

impl std::fmt::Debug for ContextKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ContextKey({}, [redacted])", self.id)
    }
}

/// Why a key set could not be had. Messages never contain key material or the document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The store could not be read (unreachable, access denied, parameter missing).
    #[error("context key store unavailable: {0}")]
    Unavailable(String),
    /// The document was read but breaks a rule.
    #[error("context key set is invalid: {0}")]
    Invalid(String),
}

/// The keys of one document: the signing key and every accepted key.
#[derive(Debug)]
pub struct KeySet {
    signing: String,
    keys: BTreeMap<String, ContextKey>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    signing_key_id: String,
    keys: BTreeMap<String, String>,
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_KEY_ID_LEN
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn decode_key(text: &str) -> Option<Vec<u8>> {
    STANDARD.decode(text.as_bytes()).ok().or_else(|| URL_SAFE_NO_PAD.decode(text.as_bytes()).ok())
}

impl KeySet {
    /// Parses and checks a key-set document.
    pub fn parse(bytes: &[u8]) -> Result<KeySet, KeyError> {
        if bytes.len() > MAX_DOCUMENT_BYTES {
            return Err(KeyError::Invalid(format!("the document is over {MAX_DOCUMENT_BYTES} bytes")));
        }
        // serde_json's own messages may quote the input, which holds keys: say only where it went wrong.
        let doc: Document = serde_json::from_slice(bytes).map_err(|e| {
            KeyError::Invalid(format!(
                "not a key-set document ({:?} at line {} column {}); expected {{\"signing_key_id\": ID, \"keys\": {{ID: BASE64}}}}",
                e.classify(),
                e.line(),
                e.column()
            ))
        })?;
        if doc.keys.is_empty() || doc.keys.len() > MAX_KEYS {
            return Err(KeyError::Invalid(format!("it holds {} keys; 1 or {MAX_KEYS} are allowed", doc.keys.len())));
        }
        let mut keys = BTreeMap::new();
        for (id, text) in doc.keys {
            if !valid_id(&id) {
                return Err(KeyError::Invalid(format!(
                    "a key id must be 1-{MAX_KEY_ID_LEN} characters of A-Z a-z 0-9 . _ -"
                )));
            }
            let bytes = decode_key(&text).ok_or_else(|| KeyError::Invalid(format!("key {id:?} is not base64")))?;
            if !(MIN_KEY_BYTES..=MAX_KEY_BYTES).contains(&bytes.len()) {
                return Err(KeyError::Invalid(format!(
                    "key {id:?} has {} bytes; {MIN_KEY_BYTES}-{MAX_KEY_BYTES} are required",
                    bytes.len()
                )));
            }
            keys.insert(id.clone(), ContextKey { id, secret: SecretBox::new(bytes.into_boxed_slice()) });
        }
        if !keys.contains_key(&doc.signing_key_id) {
            return Err(KeyError::Invalid("signing_key_id names no key of the set".into()));
        }
        Ok(KeySet { signing: doc.signing_key_id, keys })
    }

    /// The key new MACs are made with.
    pub fn signing(&self) -> &ContextKey {
        &self.keys[&self.signing]
    }

    /// The accepted key with this id.
    pub fn get(&self, id: &str) -> Option<&ContextKey> {
        self.keys.get(id)
    }

    /// Every accepted key id, sorted.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    /// The document of this set, for writing it back (operator tooling). Secret: it holds the keys.
    pub fn to_document(&self) -> SecretString {
        let keys: serde_json::Map<String, serde_json::Value> = self
            .keys
            .values()
            .map(|k| (k.id.clone(), serde_json::Value::String(STANDARD.encode(k.secret_bytes()))))
            .collect();
        SecretString::from(serde_json::json!({"signing_key_id": self.signing, "keys": keys}).to_string())
    }

    /// A set of one new key, which signs.
    pub fn single(id: &str, secret: Vec<u8>) -> Result<KeySet, KeyError> {
        let doc = serde_json::json!({"signing_key_id": id, "keys": {id: STANDARD.encode(&secret)}});
        KeySet::parse(doc.to_string().as_bytes())
    }

    /// This set with a new key added beside the current ones (not signing yet): the first step of a rotation.
    pub fn with_added(&self, id: &str, secret: Vec<u8>) -> Result<KeySet, KeyError> {
        if self.keys.contains_key(id) {
            return Err(KeyError::Invalid(format!("key {id:?} is already in the set")));
        }
        let mut next = self.clone_keys();
        next.insert(id.to_owned(), STANDARD.encode(&secret));
        Self::rebuild(&self.signing, next)
    }

    /// This set with `id` as the signing key.
    pub fn with_signing(&self, id: &str) -> Result<KeySet, KeyError> {
        Self::rebuild(id, self.clone_keys())
    }

    /// This set without `id`, which must not be the signing key.
    pub fn without(&self, id: &str) -> Result<KeySet, KeyError> {
        if id == self.signing {
            return Err(KeyError::Invalid(format!("key {id:?} signs; make another key the signing key first")));
        }
        let mut next = self.clone_keys();
        if next.remove(id).is_none() {
            return Err(KeyError::Invalid(format!("key {id:?} is not in the set")));
        }
        Self::rebuild(&self.signing, next)
    }

    fn clone_keys(&self) -> BTreeMap<String, String> {
        self.keys.values().map(|k| (k.id.clone(), STANDARD.encode(k.secret_bytes()))).collect()
    }

    fn rebuild(signing: &str, keys: BTreeMap<String, String>) -> Result<KeySet, KeyError> {
        KeySet::parse(serde_json::json!({"signing_key_id": signing, "keys": keys}).to_string().as_bytes())
    }
}

/// Where the key-set document comes from: an SSM SecureString in Lambda, memory in tests and the local stack.
#[async_trait]
pub trait KeySource: Send + Sync + std::fmt::Debug {
    /// Reads and parses the current document.
    async fn fetch(&self) -> Result<KeySet, KeyError>;
}

/// A key source in memory, with a switch that makes it fail (tests, the local stack).
#[derive(Debug, Default)]
pub struct MemoryKeySource {
    state: std::sync::Mutex<(Option<SecretString>, bool, u64)>,
}

impl MemoryKeySource {
    /// A source holding `document`.
    pub fn new(document: SecretString) -> Self {
        MemoryKeySource { state: std::sync::Mutex::new((Some(document), false, 0)) }
    }
    /// Replaces the document.
    pub fn set(&self, document: SecretString) {
        crate::sync::lock(&self.state).0 = Some(document);
    }
    /// Makes every fetch fail (`true`) or succeed again.
    pub fn set_unavailable(&self, fail: bool) {
        crate::sync::lock(&self.state).1 = fail;
    }
    /// How many fetches were made.
    pub fn fetches(&self) -> u64 {
        crate::sync::lock(&self.state).2
    }
}

#[async_trait]
impl KeySource for MemoryKeySource {
    async fn fetch(&self) -> Result<KeySet, KeyError> {
        let doc = {
            let mut s = crate::sync::lock(&self.state);
            s.2 += 1;
            if s.1 {
                return Err(KeyError::Unavailable("memory source set to fail".into()));
            }
            s.0.clone().ok_or_else(|| KeyError::Unavailable("no document".into()))?
        };
        KeySet::parse(doc.expose_secret().as_bytes())
    }
}

/// How a [`KeyRing`] refreshes.
#[derive(Debug, Clone, Copy)]
pub struct KeyRingConfig {
    /// A key set older than this is read again (at the next use).
    pub ttl: Duration,
    /// How long past `ttl` a set may still be used while reads fail.
    pub max_stale: Duration,
    /// After a failed read, the wait before the next attempt (so an outage is not one read per request).
    pub retry_after_failure: Duration,
}

impl Default for KeyRingConfig {
    fn default() -> Self {
        KeyRingConfig {
            ttl: Duration::from_secs(300),
            max_stale: Duration::from_secs(3600),
            retry_after_failure: Duration::from_secs(5),
        }
    }
}

struct Loaded {
    keys: Arc<KeySet>,
    fetched_at: SystemTime,
    failed_at: Option<SystemTime>,
}

/// The key set of a warm instance: loaded at cold start (a failure there fails the init), read again once older
/// than the TTL, kept while reads fail for at most `max_stale` more, one read at a time.
pub struct KeyRing {
    source: Arc<dyn KeySource>,
    config: KeyRingConfig,
    clock: Clock,
    loaded: RwLock<Loaded>,
    refresh: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing").field("source", &self.source).field("config", &self.config).finish_non_exhaustive()
    }
}

impl KeyRing {
    /// Reads the key set once; the instance cannot sign or verify without it.
    pub async fn load(source: Arc<dyn KeySource>, config: KeyRingConfig, clock: Clock) -> Result<KeyRing, KeyError> {
        let keys = Arc::new(source.fetch().await?);
        let loaded = Loaded { keys, fetched_at: clock.now(), failed_at: None };
        Ok(KeyRing { source, config, clock, loaded: RwLock::new(loaded), refresh: tokio::sync::Mutex::new(()) })
    }

    /// The current key set, read again first when it is older than the TTL.
    pub async fn current(&self) -> Result<Arc<KeySet>, KeyError> {
        if let Some(keys) = self.fresh() {
            return Ok(keys);
        }
        let _one_reader = self.refresh.lock().await;
        if let Some(keys) = self.fresh() {
            return Ok(keys);
        }
        let now = self.clock.now();
        let (stale, fetched_at, failed_at) = {
            let l = crate::sync::read(&self.loaded);
            (l.keys.clone(), l.fetched_at, l.failed_at)
        };
        let usable_until = fetched_at + self.config.ttl + self.config.max_stale;
        let recently_failed = failed_at.is_some_and(|t| now < t + self.config.retry_after_failure);
        if !recently_failed {
            match self.source.fetch().await {
                Ok(keys) => {
                    let keys = Arc::new(keys);
                    let mut l = crate::sync::write(&self.loaded);
                    *l = Loaded { keys: keys.clone(), fetched_at: self.clock.now(), failed_at: None };
                    return Ok(keys);
                }
                Err(e) => {
                    tracing::warn!(event = "context_keys_refresh_failed", error = %e, "context key refresh failed");
                    crate::sync::write(&self.loaded).failed_at = Some(now);
                    if now >= usable_until {
                        return Err(e);
                    }
                    return Ok(stale);
                }
            }
        }
        if now >= usable_until {
            return Err(KeyError::Unavailable("the key set is past its stale bound and the last read failed".into()));
        }
        Ok(stale)
    }

    fn fresh(&self) -> Option<Arc<KeySet>> {
        let l = crate::sync::read(&self.loaded);
        let age = self.clock.now().duration_since(l.fetched_at).unwrap_or_default();
        (age < self.config.ttl).then(|| l.keys.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    const K2: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";

    fn doc(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    #[test]
    fn the_document_rules_hold() {
        let ok = KeySet::parse(format!(r#"{{"signing_key_id":"a","keys":{{"a":"{K1}","b":"{K2}"}}}}"#).as_bytes());
        let ok = ok.unwrap();
        assert_eq!(ok.signing().id(), "a");
        assert_eq!(ok.ids().collect::<Vec<_>>(), ["a", "b"]);
        let refused = [
            r#"{"signing_key_id":"a","keys":{}}"#.to_owned(),
            format!(r#"{{"signing_key_id":"a","keys":{{"a":"{K1}","b":"{K2}","c":"{K1}"}}}}"#),
            format!(r#"{{"signing_key_id":"z","keys":{{"a":"{K1}"}}}}"#),
            format!(r#"{{"signing_key_id":"a","keys":{{"a":"{K1}"}},"extra":1}}"#),
            r#"{"signing_key_id":"a","keys":{"a":"c2hvcnQ="}}"#.to_owned(),
            format!(r#"{{"signing_key_id":"a","keys":{{"a":"{}"}}}}"#, STANDARD.encode([7u8; 65])),
            r#"{"signing_key_id":"a","keys":{"a":"not base64!"}}"#.to_owned(),
            format!(r#"{{"signing_key_id":"a b","keys":{{"a b":"{K1}"}}}}"#),
            format!(r#"{{"signing_key_id":"{0}","keys":{{"{0}":"{K1}"}}}}"#, "x".repeat(65)),
            "not json".to_owned(),
            format!(r#"{{"signing_key_id":"a","keys":{{"a":"{K1}"}}}}{}"#, " ".repeat(MAX_DOCUMENT_BYTES)),
        ];
        for d in refused {
            let err = KeySet::parse(d.as_bytes()).unwrap_err();
            assert!(matches!(err, KeyError::Invalid(_)), "{d}: {err:?}");
            let text = err.to_string();
            assert!(!text.contains(K1) && !text.contains(K2), "a key leaked into {text}");
        }
        // Exactly the bounds: 32 and 64 bytes, url-safe unpadded too.
        for bytes in [32usize, 64] {
            let k = URL_SAFE_NO_PAD.encode(vec![1u8; bytes]);
            assert!(KeySet::parse(format!(r#"{{"signing_key_id":"a","keys":{{"a":"{k}"}}}}"#).as_bytes()).is_ok());
        }
        // A document of exactly the size limit is read; one byte more is not (the refused list above).
        let doc = format!(r#"{{"signing_key_id":"a","keys":{{"a":"{K1}"}}}}"#);
        let padded = format!("{doc}{}", " ".repeat(MAX_DOCUMENT_BYTES - doc.len()));
        assert!(KeySet::parse(padded.as_bytes()).is_ok());
        assert!(KeySet::parse(format!("{padded} ").as_bytes()).is_err());
        let k = STANDARD.encode([1u8; 31]);
        assert!(KeySet::parse(format!(r#"{{"signing_key_id":"a","keys":{{"a":"{k}"}}}}"#).as_bytes()).is_err());
    }

    #[test]
    fn no_key_byte_in_debug_or_the_errors_of_a_bad_document() {
        let set = KeySet::parse(format!(r#"{{"signing_key_id":"a","keys":{{"a":"{K1}"}}}}"#).as_bytes()).unwrap();
        let shown = format!("{set:?}");
        assert!(!shown.contains(K1) && !shown.contains("0123456789abcdef"), "{shown}");
        assert!(shown.contains("ContextKey(a, [redacted])"), "the id is shown, the bytes are not: {shown}");
        // A document with a syntax error right after a key: serde's message would quote the input.
        let broken = format!(r#"{{"signing_key_id":"a","keys":{{"a":"{K1}" "b"}}}}"#);
        let err = KeySet::parse(broken.as_bytes()).unwrap_err().to_string();
        assert!(!err.contains(K1), "{err}");
    }

    #[test]
    fn a_rotation_is_three_edits_that_keep_the_rules() {
        let one = KeySet::single("old", vec![1u8; 32]).unwrap();
        let two = one.with_added("new", vec![2u8; 32]).unwrap();
        assert_eq!(two.signing().id(), "old");
        assert!(two.with_added("third", vec![3u8; 32]).is_err(), "never three keys");
        assert!(two.with_added("old", vec![3u8; 32]).is_err(), "an id is not reused");
        assert!(two.without("old").is_err(), "the signing key is not removed");
        let switched = two.with_signing("new").unwrap();
        assert!(two.with_signing("nope").is_err());
        let done = switched.without("old").unwrap();
        assert_eq!(done.ids().collect::<Vec<_>>(), ["new"]);
        assert!(done.without("old").is_err());
        let back = KeySet::parse(done.to_document().expose_secret().as_bytes()).unwrap();
        assert_eq!(back.signing().secret_bytes(), &[2u8; 32][..]);
    }

    #[tokio::test]
    async fn the_ring_refreshes_after_its_ttl_and_serves_stale_only_within_the_bound() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let now = Arc::new(std::sync::Mutex::new(t0));
        let clock = {
            let now = now.clone();
            Clock::from_fn(move || *now.lock().unwrap())
        };
        let advance = |s: u64| *now.lock().unwrap() += Duration::from_secs(s);
        let source = Arc::new(MemoryKeySource::new(doc(&format!(r#"{{"signing_key_id":"a","keys":{{"a":"{K1}"}}}}"#))));
        let config = KeyRingConfig {
            ttl: Duration::from_secs(300),
            max_stale: Duration::from_secs(600),
            retry_after_failure: Duration::from_secs(5),
        };
        let ring = KeyRing::load(source.clone(), config, clock).await.unwrap();
        assert_eq!(source.fetches(), 1);
        let shown = format!("{ring:?}");
        assert!(shown.starts_with("KeyRing {") && shown.contains("ttl: 300s") && !shown.contains(K1), "{shown}");
        advance(299);
        assert_eq!(ring.current().await.unwrap().signing().id(), "a");
        assert_eq!(source.fetches(), 1, "fresh within the TTL");

        source.set(doc(&format!(r#"{{"signing_key_id":"b","keys":{{"a":"{K1}","b":"{K2}"}}}}"#)));
        advance(1);
        assert_eq!(ring.current().await.unwrap().signing().id(), "b", "read again at the TTL");
        assert_eq!(source.fetches(), 2);

        source.set_unavailable(true);
        advance(300);
        assert_eq!(ring.current().await.unwrap().signing().id(), "b", "stale while reads fail");
        assert_eq!(source.fetches(), 3);
        advance(4);
        ring.current().await.unwrap();
        assert_eq!(source.fetches(), 3, "no read within the wait after a failure");
        advance(1);
        ring.current().await.unwrap();
        assert_eq!(source.fetches(), 4);
        advance(594); // 300 + 600 past the last good read, less one second
        assert!(ring.current().await.is_ok());
        advance(1);
        assert!(matches!(ring.current().await, Err(KeyError::Unavailable(_))), "past the stale bound");
        source.set_unavailable(false);
        advance(5);
        assert_eq!(ring.current().await.unwrap().signing().id(), "b", "back once a read succeeds");
    }

    #[tokio::test]
    async fn a_cold_start_without_keys_fails() {
        let source = Arc::new(MemoryKeySource::default());
        let err = KeyRing::load(source, KeyRingConfig::default(), Clock::system()).await.unwrap_err();
        assert!(matches!(err, KeyError::Unavailable(_)));
    }
}
