//! The context-MAC key set in SSM: `context-key init | add | promote | retire | show`.
//!
//! Both functions read one SecureString (`CONTEXT_KEY_PARAMETER`) holding a key-set document of one or two keys:
//! the authorizer signs every caller context with the signing key, the broker accepts a MAC made with any key of the
//! set. CloudFormation cannot create a SecureString, so the parameter is created once, before the first deploy, by
//! `init`; a rotation is `add` (a second key, accepted but not signing), `promote` (it signs), `retire` (the old one
//! is gone), with waits in between that `docs/runbooks/rotate-context-key.md` explains.
//!
//! Every edit is one of `tb_shared::context::KeySet`'s own functions (`single`, `with_added`, `with_signing`,
//! `without`), so the rules of the document (at most two keys, the signing key cannot be removed, valid ids and
//! lengths) are the ones the functions apply when they read it; and after each write the parameter is read back
//! through `SsmKeySource`, the reader the functions use. Key bytes come from the operating system's random generator
//! and never reach standard output, an error or a log: only key ids are shown.

use std::time::{Duration, SystemTime};

use aws_sdk_ssm::types::ParameterType;
use rand::TryRngCore as _;
use secrecy::{ExposeSecret, SecretString};
use tb_shared::context::{KeyError, KeySet, KeySource, SsmKeySource};

use crate::secret::{self, PutOptions, SecretError};

/// Bytes of a new key: HMAC-SHA256's output size, the smallest the key-set rules accept.
pub const KEY_BYTES: usize = 32;

/// The least time `promote` and `retire` leave after the key set's last change unless told otherwise (`--settle`):
/// the template's CONTEXT_KEYS_TTL_SECONDS (300) plus CONTEXT_MAC_TTL_SECONDS (300) plus a minute of margin, so an
/// instance that loaded the previous set has read it again and every context signed before has expired.
pub const DEFAULT_SETTLE: Duration = Duration::from_secs(11 * 60);
/// [`DEFAULT_SETTLE`] as the command line writes it.
pub const DEFAULT_SETTLE_ARG: &str = "11m";

/// The Description written with the key set: says what the parameter is, never what it holds.
pub const DESCRIPTION: &str = "token-broker context-MAC key set (brokerctl context-key; never edit by hand)";

/// Why a key-set command could not do its work. No variant carries key material.
#[derive(Debug, thiserror::Error)]
pub enum ContextKeyError {
    /// The command cannot be done with this input or in this state (the message says why and what to do).
    #[error("{0}")]
    Refused(String),
    /// The parameter does not exist.
    #[error("parameter {0} does not exist; create it with `brokerctl context-key init --name {0}`")]
    Missing(String),
    /// The parameter exists (init).
    #[error("parameter {0} already exists; init creates a new key set only (see `context-key show`)")]
    Exists(String),
    /// The document breaks a rule of the key set (the functions' own message).
    #[error("{0}")]
    Keys(#[from] KeyError),
    /// An SSM call failed.
    #[error("{0}")]
    Ssm(SecretError),
    /// The operating system's random generator failed.
    #[error("cannot draw a random key: {0}")]
    Random(String),
}

impl From<SecretError> for ContextKeyError {
    fn from(e: SecretError) -> Self {
        match e {
            SecretError::Exists(name) => ContextKeyError::Exists(name),
            other => ContextKeyError::Ssm(other),
        }
    }
}

/// A new key: [`KEY_BYTES`] from the operating system's CSPRNG.
pub fn random_key() -> Result<Vec<u8>, ContextKeyError> {
    let mut key = vec![0u8; KEY_BYTES];
    rand::rngs::OsRng.try_fill_bytes(&mut key).map_err(|e| ContextKeyError::Random(e.to_string()))?;
    Ok(key)
}

/// A new key id: `ctx-YYYYMMDD-` and 8 random hex digits. The date says when the key was made (so `show` tells the
/// old key from the new one at a glance); the suffix keeps two keys made the same day apart. Ids are not secret:
/// they travel in every context.
pub fn new_key_id(now: SystemTime) -> Result<String, ContextKeyError> {
    let date = time::OffsetDateTime::from(now).date();
    let mut suffix = [0u8; 4];
    rand::rngs::OsRng.try_fill_bytes(&mut suffix).map_err(|e| ContextKeyError::Random(e.to_string()))?;
    Ok(format!("ctx-{:04}{:02}{:02}-{}", date.year(), u8::from(date.month()), date.day(), hex::encode(suffix)))
}

/// The set `init` writes: one new key, which signs.
pub fn initial(id: &str) -> Result<KeySet, ContextKeyError> {
    Ok(KeySet::single(id, random_key()?)?)
}

/// `set` with a new key `id` beside the current one, not signing yet.
pub fn added(set: &KeySet, id: &str) -> Result<KeySet, ContextKeyError> {
    Ok(set.with_added(id, random_key()?)?)
}

/// `set` with `id` as the signing key; refused when it signs already (nothing would change).
pub fn promoted(set: &KeySet, id: &str) -> Result<KeySet, ContextKeyError> {
    if set.signing().id() == id {
        return Err(ContextKeyError::Refused(format!("key {id:?} signs already; nothing to do")));
    }
    Ok(set.with_signing(id)?)
}

/// `set` without `id`, which must not be the signing key.
pub fn retired(set: &KeySet, id: &str) -> Result<KeySet, ContextKeyError> {
    Ok(set.without(id)?)
}

/// The key ids of a set, each with whether it signs: everything `show` prints about the keys.
pub fn listing(set: &KeySet) -> Vec<(String, bool)> {
    let signing = set.signing().id();
    set.ids().map(|id| (id.to_owned(), id == signing)).collect()
}

/// One line per key, for the commands' output: `  ID  signing` or `  ID  accepted (not signing)`.
pub fn describe(set: &KeySet) -> String {
    listing(set)
        .into_iter()
        .map(|(id, signs)| format!("  {id}  {}\n", if signs { "signing" } else { "accepted (not signing)" }))
        .collect()
}

/// What was read: the set, and the parameter it came from.
#[derive(Debug)]
pub struct Stored {
    pub keys: KeySet,
    pub version: i64,
    /// The KMS key of the SecureString as SSM reports it.
    pub kms_key_id: Option<String>,
    pub last_modified: Option<SystemTime>,
}

/// The key-set parameter in SSM.
#[derive(Debug, Clone)]
pub struct KeyStore {
    ssm: aws_sdk_ssm::Client,
    name: String,
}

impl KeyStore {
    /// The parameter `name` (the template's `ContextKeyParameterName`), through `ssm`.
    pub fn new(ssm: aws_sdk_ssm::Client, name: impl Into<String>) -> Result<Self, ContextKeyError> {
        let name = name.into();
        let ok = name.len() <= 1011
            && name.starts_with('/')
            && name[1..].split('/').all(|seg| {
                !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
            });
        if !ok {
            return Err(ContextKeyError::Refused(format!(
                "--name {name:?} is not a parameter path like /token-broker/context-key (A-Z a-z 0-9 _ . -)"
            )));
        }
        Ok(KeyStore { ssm, name })
    }

    /// The parameter name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Reads and checks the current set.
    pub async fn read(&self) -> Result<Stored, ContextKeyError> {
        let info =
            secret::info(&self.ssm, &self.name).await?.ok_or_else(|| ContextKeyError::Missing(self.name.clone()))?;
        if !info.secure {
            return Err(ContextKeyError::Refused(format!("parameter {} is not a SecureString", self.name)));
        }
        let out = self.ssm.get_parameter().name(&self.name).with_decryption(true).send().await.map_err(|e| {
            ContextKeyError::Ssm(SecretError::Aws {
                step: "reading",
                name: self.name.clone(),
                message: tb_shared::aws::describe(&e),
            })
        })?;
        let param = out.parameter().ok_or_else(|| ContextKeyError::Missing(self.name.clone()))?;
        if param.r#type() != Some(&ParameterType::SecureString) {
            return Err(ContextKeyError::Refused(format!("parameter {} is not a SecureString", self.name)));
        }
        let value = SecretString::from(param.value().unwrap_or_default().to_owned());
        let keys = KeySet::parse(value.expose_secret().as_bytes())?;
        Ok(Stored { keys, version: param.version(), kms_key_id: info.key_id, last_modified: info.last_modified })
    }

    /// Creates the parameter with `keys`; refused when it exists. Answers the version (1).
    pub async fn create(&self, keys: &KeySet, kms_key_id: Option<&str>) -> Result<i64, ContextKeyError> {
        self.put(keys, kms_key_id, false).await
    }

    /// Replaces the set read as `read` with `keys`, keeping the parameter's KMS key unless `kms_key_id` names
    /// another; refused when the parameter changed since it was read (another operator's edit would be lost).
    pub async fn replace(
        &self,
        read: &Stored,
        keys: &KeySet,
        kms_key_id: Option<&str>,
    ) -> Result<i64, ContextKeyError> {
        let now =
            secret::info(&self.ssm, &self.name).await?.ok_or_else(|| ContextKeyError::Missing(self.name.clone()))?;
        if now.version != read.version {
            return Err(ContextKeyError::Refused(format!(
                "parameter {} changed while this command ran (version {} is now {}); nothing was written, run it again",
                self.name, read.version, now.version
            )));
        }
        self.put(keys, kms_key_id.or(read.kms_key_id.as_deref()), true).await
    }

    async fn put(&self, keys: &KeySet, kms_key_id: Option<&str>, overwrite: bool) -> Result<i64, ContextKeyError> {
        let opts =
            PutOptions { kms_key_id: kms_key_id.map(str::to_owned), overwrite, description: DESCRIPTION.to_owned() };
        Ok(secret::put(&self.ssm, &self.name, &keys.to_document(), &opts).await?)
    }

    /// Reads the parameter back through the functions' own source and checks it holds `keys` (same ids, same
    /// signing key, same bytes).
    pub async fn verify(&self, keys: &KeySet) -> Result<(), ContextKeyError> {
        let back = SsmKeySource::new(self.ssm.clone(), &self.name).fetch().await?;
        let same = back.signing().id() == keys.signing().id()
            && back.to_document().expose_secret() == keys.to_document().expose_secret();
        if same {
            Ok(())
        } else {
            Err(ContextKeyError::Refused(format!(
                "written, but {} reads back a different key set: run `brokerctl context-key show --name {}`",
                self.name, self.name
            )))
        }
    }
}

/// Refuses a step taken sooner than `settle` after the parameter's last change: the functions hold a key set for
/// up to CONTEXT_KEYS_TTL_SECONDS (and a broker accepts, an authorizer signs, with what it holds), so a promote right
/// after an add, or a retire right after a promote, would make brokers refuse contexts that instances still on the
/// previous set sign.
pub fn check_settled(stored: &Stored, settle: Duration, now: SystemTime, step: &str) -> Result<(), ContextKeyError> {
    let Some(changed) = stored.last_modified else {
        return if settle.is_zero() {
            Ok(())
        } else {
            Err(ContextKeyError::Refused(format!(
                "SSM does not say when the key set last changed; give --settle 0s to {step} anyway"
            )))
        };
    };
    let age = now.duration_since(changed).unwrap_or_default();
    if age >= settle {
        return Ok(());
    }
    let left = Duration::from_secs((settle - age).as_secs() + 1);
    Err(ContextKeyError::Refused(format!(
        "the key set changed {} ago; {step} only once every function instance has loaded that change (--settle {}): \
         wait {} more, or see docs/runbooks/rotate-context-key.md before overriding with --settle",
        humantime::format_duration(Duration::from_secs(age.as_secs())),
        humantime::format_duration(settle),
        humantime::format_duration(left)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ids_are_valid_dated_and_distinct() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_780_000_000); // 2026-05-28
        let a = new_key_id(now).unwrap();
        let b = new_key_id(now).unwrap();
        assert!(a.starts_with("ctx-20260528-") && a.len() == "ctx-20260528-".len() + 8, "{a}");
        assert_ne!(a, b);
        // The key-set rules accept the id.
        assert!(initial(&a).is_ok());
    }

    #[test]
    fn random_keys_are_32_bytes_and_differ() {
        let (a, b) = (random_key().unwrap(), random_key().unwrap());
        assert_eq!(a.len(), KEY_BYTES);
        assert_ne!(a, b);
    }

    #[test]
    fn a_rotation_through_the_edits_keeps_the_rules_and_shows_no_bytes() {
        let set = initial("old").unwrap();
        assert_eq!(listing(&set), [("old".to_owned(), true)]);
        let two = added(&set, "new").unwrap();
        assert_eq!(listing(&two), [("new".to_owned(), false), ("old".to_owned(), true)]);
        assert!(added(&two, "third").is_err(), "never three keys");
        assert!(retired(&two, "old").is_err(), "the signing key stays");
        assert!(promoted(&two, "old").is_err(), "already signing");
        assert!(promoted(&two, "nope").is_err());
        let switched = promoted(&two, "new").unwrap();
        let done = retired(&switched, "old").unwrap();
        assert_eq!(listing(&done), [("new".to_owned(), true)]);
        let shown = describe(&two);
        assert!(shown.contains("old  signing") && shown.contains("new  accepted"), "{shown}");
        let doc = two.to_document();
        let doc: serde_json::Value = serde_json::from_str(doc.expose_secret()).unwrap();
        for (_, key) in doc["keys"].as_object().unwrap() {
            assert!(!shown.contains(key.as_str().unwrap()));
        }
    }

    #[test]
    fn the_default_settle_is_written_as_it_is_meant() {
        assert_eq!(humantime::parse_duration(DEFAULT_SETTLE_ARG).unwrap(), DEFAULT_SETTLE);
    }

    #[test]
    fn a_step_waits_for_the_last_change_to_settle() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_780_000_000);
        let stored = Stored { keys: initial("a").unwrap(), version: 2, kms_key_id: None, last_modified: Some(t0) };
        let settle = Duration::from_secs(600);
        let err = check_settled(&stored, settle, t0 + Duration::from_secs(599), "promote").unwrap_err();
        assert!(err.to_string().contains("wait 2s more"), "{err}");
        assert!(check_settled(&stored, settle, t0 + settle, "promote").is_ok());
        assert!(check_settled(&stored, Duration::ZERO, t0, "promote").is_ok());
        let unknown = Stored { last_modified: None, ..stored };
        assert!(check_settled(&unknown, settle, t0, "retire").is_err());
        assert!(check_settled(&unknown, Duration::ZERO, t0, "retire").is_ok());
    }
}
