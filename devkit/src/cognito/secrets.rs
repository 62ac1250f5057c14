//! An app client's active secrets, as Cognito keeps them since client-secret rotation: up to two at a time, each
//! with an id of the form `<client id>--<epoch create time>` and a creation date, the value only ever returned once.
//! NOT FOR PRODUCTION.
//!
//! Values are kept as SHA-256 digests only, and a presented secret is compared against every active one in constant
//! time, so neither which secret matched nor how many there are shows in timing.

use std::time::{SystemTime, UNIX_EPOCH};

use super::auth;

/// The most active secrets an app client can hold (Cognito: "Supports up to 2 active secrets per app client").
pub(super) const MAX_SECRETS: usize = 2;

/// One active secret.
#[derive(Clone)]
pub(super) struct SecretEntry {
    pub id: String,
    pub digest: [u8; 32],
    /// Creation time in milliseconds since the epoch (the id carries the same number).
    pub created_ms: u128,
}

/// Why a change to the secret list is refused; the API layer maps each to Cognito's exception.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum SecretsError {
    /// A third secret was asked for.
    Limit,
    /// No secret with this id.
    UnknownId,
    /// The last remaining secret cannot be deleted.
    LastSecret,
}

/// The active secrets of one app client, oldest first.
#[derive(Clone)]
pub(super) struct ClientSecrets {
    client_id: String,
    entries: Vec<SecretEntry>,
}

fn now_ms() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0)
}

impl ClientSecrets {
    /// A client with one secret, created now.
    pub(super) fn new(client_id: &str, secret: &str) -> Self {
        let mut s = Self { client_id: client_id.to_owned(), entries: Vec::new() };
        s.push(secret);
        s
    }

    /// Replaces every secret with `secret` (the old ones stop working at once): what regenerating a secret did
    /// before rotation existed, and what [`super::CognitoStandin::set_secret`] offers tests.
    pub(super) fn replace_all(&mut self, secret: &str) {
        self.entries.clear();
        self.push(secret);
    }

    /// Adds a secret; refused when the client already holds [`MAX_SECRETS`].
    pub(super) fn add(&mut self, secret: &str) -> Result<&SecretEntry, SecretsError> {
        if self.entries.len() >= MAX_SECRETS {
            return Err(SecretsError::Limit);
        }
        Ok(self.push(secret))
    }

    /// Deletes the secret `id`; the last one cannot be deleted.
    pub(super) fn delete(&mut self, id: &str) -> Result<(), SecretsError> {
        let pos = self.entries.iter().position(|e| e.id == id).ok_or(SecretsError::UnknownId)?;
        if self.entries.len() == 1 {
            return Err(SecretsError::LastSecret);
        }
        self.entries.remove(pos);
        Ok(())
    }

    /// The active secrets, oldest first.
    pub(super) fn entries(&self) -> &[SecretEntry] {
        &self.entries
    }

    /// Whether `presented` is one of the active secrets. Every entry is compared (no early exit).
    pub(super) fn matches(&self, presented: &str) -> bool {
        self.entries.iter().fold(false, |any, e| any | auth::secret_matches(presented, &e.digest))
    }

    fn push(&mut self, secret: &str) -> &SecretEntry {
        // Ids must stay unique when two secrets are made within the same millisecond.
        let mut created_ms = now_ms();
        while self.entries.iter().any(|e| e.created_ms >= created_ms) {
            created_ms += 1;
        }
        let entry =
            SecretEntry { id: format!("{}--{created_ms}", self.client_id), digest: auth::digest(secret), created_ms };
        self.entries.push(entry);
        &self.entries[self.entries.len() - 1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_secrets_at_most_and_never_none() {
        let mut s = ClientSecrets::new("client1", "first-secret-value-000000");
        let first = s.entries()[0].id.clone();
        assert!(first.starts_with("client1--"));
        let second = s.add("second-secret-value-00000").unwrap().id.clone();
        assert_ne!(first, second);
        assert!(s.matches("first-secret-value-000000") && s.matches("second-secret-value-00000"));
        assert!(!s.matches("other"));
        assert_eq!(s.add("third-secret-value-000000").err(), Some(SecretsError::Limit));
        assert_eq!(s.delete("client1--1"), Err(SecretsError::UnknownId));
        s.delete(&first).unwrap();
        assert!(!s.matches("first-secret-value-000000"));
        assert_eq!(s.delete(&second), Err(SecretsError::LastSecret));
        assert_eq!(s.entries().len(), 1);
    }

    #[test]
    fn replace_all_leaves_one_new_secret() {
        let mut s = ClientSecrets::new("c", "a");
        s.add("b").unwrap();
        s.replace_all("c");
        assert_eq!(s.entries().len(), 1);
        assert!(s.matches("c") && !s.matches("a") && !s.matches("b"));
    }
}
