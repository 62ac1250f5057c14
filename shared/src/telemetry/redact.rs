use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::ids::CallerId;

/// Turns a caller id into what logs may show: the id itself, or, where the policy asks for it, the first 16 hex
/// digits of HMAC-SHA256(key, id). Keyed, so a reader of the logs cannot confirm a guessed id offline.
#[derive(Clone)]
pub struct CallerIdHasher {
    key: Option<Vec<u8>>,
}

impl std::fmt::Debug for CallerIdHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.key.is_some() { "CallerIdHasher(keyed)" } else { "CallerIdHasher(plain)" })
    }
}

impl CallerIdHasher {
    /// Logs show caller ids as they are.
    pub fn plain() -> Self {
        CallerIdHasher { key: None }
    }
    /// Logs show a keyed hash of caller ids.
    pub fn keyed(key: &[u8]) -> Self {
        CallerIdHasher { key: Some(key.to_vec()) }
    }
    /// What a policy asks for: plain ids, or (with `hash_caller_ids`) ids hashed with `key`. `None` when the policy
    /// asks for hashing and there is no key: both functions refuse to start then, rather than log ids in clear.
    pub fn for_policy(hash_caller_ids: bool, key: Option<&secrecy::SecretString>) -> Option<Self> {
        use secrecy::ExposeSecret as _;
        match (hash_caller_ids, key) {
            (false, _) => Some(Self::plain()),
            (true, Some(k)) => Some(Self::keyed(k.expose_secret().as_bytes())),
            (true, None) => None,
        }
    }
    /// The loggable form of `id`.
    pub fn display(&self, id: &CallerId) -> String {
        match &self.key {
            None => id.to_string(),
            Some(k) => {
                // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
                let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(k) else {
                    return "caller-hash-unavailable".into();
                };
                mac.update(id.as_str().as_bytes());
                let out = mac.finalize().into_bytes();
                format!("h:{}", hex::encode(&out[..8]))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_hash_hides_the_id_and_is_stable() {
        let id = CallerId::try_from("order-processing").unwrap();
        assert_eq!(CallerIdHasher::plain().display(&id), "order-processing");
        let h = CallerIdHasher::keyed(b"k1");
        let shown = h.display(&id);
        assert!(shown.starts_with("h:") && !shown.contains("order"));
        assert_eq!(shown, h.display(&id));
        assert_ne!(shown, CallerIdHasher::keyed(b"k2").display(&id));
        assert!(!format!("{h:?}").contains("k1"));
    }

    #[test]
    fn the_policy_decides_and_hashing_without_a_key_is_refused() {
        let id = CallerId::try_from("order-processing").unwrap();
        let key = secrecy::SecretString::from("sixteen-bytes!!!".to_owned());
        assert_eq!(CallerIdHasher::for_policy(false, Some(&key)).unwrap().display(&id), "order-processing");
        assert_eq!(CallerIdHasher::for_policy(false, None).unwrap().display(&id), "order-processing");
        let hashed = CallerIdHasher::for_policy(true, Some(&key)).unwrap().display(&id);
        assert_eq!(hashed, CallerIdHasher::keyed(b"sixteen-bytes!!!").display(&id));
        assert!(CallerIdHasher::for_policy(true, None).is_none());
    }
}
