//! The sealed form of a cached token: what goes into the table and how it is bound to the request it may serve.
//!
//! Two bindings, each covering what the other cannot:
//! - the data key is released by KMS only under an encryption context naming the app client, the scope set and (for
//!   a certificate-bound token) the certificate thumbprint ([`EncryptionContext`]), so an item copied anywhere, or
//!   read by anyone without `kms:Decrypt` under that exact context, yields ciphertext only. KMS logs the context of
//!   every call in CloudTrail, so it holds nothing secret and no caller id.
//! - the AES-256-GCM tag covers the item's key (a digest of the whole reuse key: app client, scopes, caller, how the
//!   caller authenticated, thumbprint) and the token's metadata (when it was obtained, its lifetime, its scope), so
//!   an item moved to another caller's key, or whose times were edited to stretch its reuse window, fails to open.

use std::collections::BTreeMap;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::rand::{SecureRandom as _, SystemRandom};
use secrecy::{ExposeSecret as _, SecretString};
use sha2::{Digest as _, Sha256};
use tb_shared::ids::ScopeSet;

use crate::reuse::ReuseKey;

/// Version of the sealed format; part of the authenticated data, so an item of another format never opens as this
/// one.
pub(crate) const FORMAT: u64 = 1;

/// The encryption-context pair every data key of this cache carries, so the function's KMS permission can be limited
/// to this use (`kms:EncryptionContext:purpose`) in its role's policy.
pub const PURPOSE_KEY: &str = "purpose";
/// The value of [`PURPOSE_KEY`].
pub const PURPOSE: &str = "token-broker/token-cache";
/// Context key: the policy's name of the app client (`cognito_client`).
pub const APP_CLIENT_KEY: &str = "app_client";
/// Context key: the scope set, sorted and space-separated.
pub const SCOPES_KEY: &str = "scopes";
/// Context key, certificate-bound tokens only: the certificate's `x5t#S256` thumbprint.
pub const CERT_THUMBPRINT_KEY: &str = "cert_thumbprint";

/// The KMS encryption context of one reuse key's data keys.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct EncryptionContext(BTreeMap<&'static str, String>);

impl EncryptionContext {
    pub(crate) fn for_key(key: &ReuseKey) -> Self {
        let mut m = BTreeMap::from([
            (PURPOSE_KEY, PURPOSE.to_owned()),
            (APP_CLIENT_KEY, key.app_client.clone()),
            (SCOPES_KEY, key.scopes.to_param()),
        ]);
        if let Some(t) = &key.cert_thumbprint {
            m.insert(CERT_THUMBPRINT_KEY, t.clone());
        }
        EncryptionContext(m)
    }

    /// The pairs, in key order.
    pub(crate) fn pairs(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.0.iter().map(|(k, v)| (*k, v.as_str()))
    }
}

/// The table key of a reuse key: `tok1#` and the hex SHA-256 of its fields, each length-prefixed so no two keys
/// share an encoding. A digest rather than the fields: keys have one short length whatever the scopes, and carry no
/// caller id or certificate thumbprint in clear. The digest is not keyed: someone who can read the table and guesses
/// a key's fields can tell whether it has an item. The granted scope is an attribute of its own, authenticated by
/// the seal but not encrypted.
pub(crate) fn item_key(key: &ReuseKey) -> String {
    let mut h = Sha256::new();
    let scopes = key.scopes.to_param();
    let fields: [&str; 5] = [
        &key.app_client,
        &scopes,
        key.caller.as_str(),
        key.auth_method.as_str(),
        key.cert_thumbprint.as_deref().unwrap_or(""),
    ];
    for f in fields {
        h.update((f.len() as u64).to_be_bytes());
        h.update(f.as_bytes());
    }
    format!("tok{FORMAT}#{}", hex::encode(h.finalize()))
}

/// A plaintext data key (AES-256). Held by aws-lc, which has no way to print it.
pub(crate) struct DataKey(LessSafeKey);

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(..)")
    }
}

impl DataKey {
    /// A key from KMS's 32 plaintext bytes; anything else is refused.
    pub(crate) fn from_bytes(bytes: &[u8]) -> Option<DataKey> {
        if bytes.len() != 32 {
            return None;
        }
        UnboundKey::new(&AES_256_GCM, bytes).ok().map(|k| DataKey(LessSafeKey::new(k)))
    }
}

/// A token as stored: the encrypted data key, the AES-256-GCM nonce and ciphertext (with its tag), and the metadata
/// the tag covers.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct SealedToken {
    pub encrypted_key: Vec<u8>,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
    /// When the token was obtained from Cognito, epoch milliseconds.
    pub obtained_ms: u64,
    /// The token's `expires_in` when obtained, seconds.
    pub lifetime_s: u64,
    /// The scope Cognito granted, space-separated.
    pub scope: String,
}

impl std::fmt::Debug for SealedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedToken")
            .field("obtained_ms", &self.obtained_ms)
            .field("lifetime_s", &self.lifetime_s)
            .finish_non_exhaustive()
    }
}

impl SealedToken {
    /// Epoch milliseconds after which the token is no longer served: three quarters of its life, as in memory.
    pub(crate) fn reuse_until_ms(&self) -> u64 {
        self.obtained_ms.saturating_add(crate::reuse::serve_window(self.lifetime_s).as_millis() as u64)
    }
}

/// Why a sealed token did not open: it was not made for this key, was altered, or is not of this format. The item
/// is then treated as absent and overwritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the cached item does not open under its key")]
pub(crate) struct Unopenable;

fn aad(item_key: &str, obtained_ms: u64, lifetime_s: u64, scope: &str) -> Vec<u8> {
    format!("tb-token-cache\n{FORMAT}\n{item_key}\n{obtained_ms}\n{lifetime_s}\n{scope}").into_bytes()
}

/// Encrypts `token` under `key` with a fresh random nonce (a data key encrypts a few thousand tokens at most in its
/// short life, far below the bound for random 96-bit nonces).
pub(crate) fn seal(
    key: &DataKey,
    encrypted_key: Vec<u8>,
    item_key: &str,
    token: &SecretString,
    obtained_ms: u64,
    lifetime_s: u64,
    scope: &ScopeSet,
) -> Option<SealedToken> {
    let scope = scope.to_param();
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new().fill(&mut nonce).ok()?;
    let mut buf = token.expose_secret().as_bytes().to_vec();
    key.0
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad(item_key, obtained_ms, lifetime_s, &scope)),
            &mut buf,
        )
        .ok()?;
    Some(SealedToken { encrypted_key, nonce: nonce.to_vec(), ciphertext: buf, obtained_ms, lifetime_s, scope })
}

/// Decrypts a sealed token read under `item_key`.
pub(crate) fn open(key: &DataKey, item_key: &str, sealed: &SealedToken) -> Result<SecretString, Unopenable> {
    let nonce = Nonce::try_assume_unique_for_key(&sealed.nonce).map_err(|_| Unopenable)?;
    let mut buf = zeroize::Zeroizing::new(sealed.ciphertext.clone());
    let plain = key
        .0
        .open_in_place(nonce, Aad::from(aad(item_key, sealed.obtained_ms, sealed.lifetime_s, &sealed.scope)), &mut buf)
        .map_err(|_| Unopenable)?;
    let token = std::str::from_utf8(plain).map_err(|_| Unopenable)?;
    if token.is_empty() {
        return Err(Unopenable);
    }
    Ok(SecretString::from(token.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use tb_shared::context::AuthMethod;
    use tb_shared::ids::CallerId;

    fn rk(caller: &str, scopes: &str, thumb: Option<&str>) -> ReuseKey {
        ReuseKey {
            app_client: "orders".into(),
            scopes: ScopeSet::parse_param(scopes).unwrap(),
            caller: CallerId::try_from(caller).unwrap(),
            auth_method: AuthMethod::Mtls,
            cert_thumbprint: thumb.map(str::to_owned),
        }
    }

    fn dk(b: u8) -> DataKey {
        DataKey::from_bytes(&[b; 32]).unwrap()
    }

    #[test]
    fn item_keys_differ_by_every_field_and_not_by_scope_order() {
        let base = item_key(&rk("a", "x y", None));
        assert_eq!(base, item_key(&rk("a", "y x", None)));
        assert!(base.starts_with("tok1#") && base.len() == 5 + 64);
        let mut others = vec![item_key(&rk("b", "x y", None)), item_key(&rk("a", "x", None))];
        others.push(item_key(&rk("a", "x y", Some("t"))));
        let mut jwt = rk("a", "x y", None);
        jwt.auth_method = AuthMethod::Jwt;
        others.push(item_key(&jwt));
        let mut other_client = rk("a", "x y", None);
        other_client.app_client = "reports".into();
        others.push(item_key(&other_client));
        for o in others {
            assert_ne!(o, base);
        }
    }

    #[test]
    fn the_context_names_client_scopes_and_thumbprint_only() {
        let c = EncryptionContext::for_key(&rk("a", "y x", Some("thumb")));
        let pairs: Vec<_> = c.pairs().collect();
        assert_eq!(
            pairs,
            vec![("app_client", "orders"), ("cert_thumbprint", "thumb"), ("purpose", PURPOSE), ("scopes", "x y")]
        );
        assert_eq!(EncryptionContext::for_key(&rk("a", "x", None)).pairs().count(), 3);
        assert_eq!(EncryptionContext::for_key(&rk("a", "x", None)), EncryptionContext::for_key(&rk("b", "x", None)));
    }

    #[test]
    fn opens_only_with_its_key_item_and_metadata() {
        let scope = ScopeSet::parse_param("x").unwrap();
        let token = SecretString::from("eyJ.secret.tok".to_owned());
        let s = seal(&dk(1), vec![9], "tok1#a", &token, 1_000, 60, &scope).unwrap();
        assert_eq!(open(&dk(1), "tok1#a", &s).unwrap().expose_secret(), "eyJ.secret.tok");
        assert_eq!(s.reuse_until_ms(), 1_000 + 45_000);
        let debug = format!("{s:?}");
        assert!(!debug.contains("secret") && debug.starts_with("SealedToken") && debug.contains("obtained_ms: 1000"));
        assert_eq!(format!("{:?}", dk(1)), "DataKey(..)", "says what it is, never its bytes");
        assert_eq!(open(&dk(2), "tok1#a", &s).err(), Some(Unopenable));
        assert_eq!(open(&dk(1), "tok1#b", &s).err(), Some(Unopenable));
        let edits: [fn(&mut SealedToken); 5] = [
            |s| s.obtained_ms += 1,
            |s| s.lifetime_s += 1,
            |s| s.scope.push_str(" y"),
            |s| s.ciphertext[0] ^= 1,
            |s| s.nonce.truncate(11),
        ];
        for edit in edits {
            let mut t = s.clone();
            edit(&mut t);
            assert_eq!(open(&dk(1), "tok1#a", &t).err(), Some(Unopenable));
        }
        let again = seal(&dk(1), vec![9], "tok1#a", &token, 1_000, 60, &scope).unwrap();
        assert_ne!(again.nonce, s.nonce, "a fresh nonce per seal");
        assert!(DataKey::from_bytes(&[0; 16]).is_none());
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Opening any bytes never panics and never yields a token unless they were sealed for this item.
        #[test]
        fn arbitrary_sealed_bytes_never_open(
            nonce in proptest::collection::vec(any::<u8>(), 0..16),
            ciphertext in proptest::collection::vec(any::<u8>(), 0..64),
            obtained_ms in any::<u64>(),
            lifetime_s in any::<u64>(),
            scope in ".{0,20}",
        ) {
            let key = DataKey::from_bytes(&[5; 32]).unwrap();
            let s = SealedToken { encrypted_key: vec![], nonce, ciphertext, obtained_ms, lifetime_s, scope };
            prop_assert!(open(&key, "tok1#a", &s).is_err());
            let _ = s.reuse_until_ms();
        }

        /// Any token seals and opens back to itself under its item, with its metadata.
        #[test]
        fn any_token_round_trips(token in "[!-~]{1,200}", obtained_ms in any::<u64>(), lifetime_s in 1u64..100_000) {
            let key = DataKey::from_bytes(&[6; 32]).unwrap();
            let scope = ScopeSet::parse_param("api/read").unwrap();
            let secret = SecretString::from(token.clone());
            let s = seal(&key, vec![1], "tok1#a", &secret, obtained_ms, lifetime_s, &scope).unwrap();
            prop_assert!(!s.ciphertext.windows(token.len()).any(|w| w == token.as_bytes()) || token.len() < 4);
            let opened = open(&key, "tok1#a", &s).unwrap();
            prop_assert_eq!(opened.expose_secret(), token.as_str());
        }
    }
}
