//! Signed caller claims for the proving grants of `rotate-secret`, for user pools that run the project's
//! pre-token-generation trigger (`trigger/`).
//!
//! That trigger fails every client-credentials token whose client metadata does not carry caller claims with a
//! valid MAC (`tb_shared::context::claims`), so a proving grant without them can never succeed there. The broker
//! signs its metadata with the context key set (`ContextKeyParameterName` in SSM); an operator who may read that
//! parameter can sign the same way, and this module does so with the broker's own function and lifetime, for the
//! app client id of the credentials being proved.
//!
//! What the claims say, since no caller is behind a proving grant:
//! - `callerId`: the caller given by `--caller`, else [`UNNAMED_CALLER`]; the trigger only checks its form.
//! - `authMethod`: `jwt`. The trigger accepts both methods, but for `mtls` the contract says the fingerprint is the
//!   certificate's `x5t#S256` thumbprint, the value a bound token's `cnf` carries and resource servers compare
//!   with the certificate they see. This tool has no certificate, so it claims the method whose fingerprint is only
//!   a log-matching hint; and the trigger refuses a certificate thumbprint beside `jwt`, so these claims can never
//!   produce a bound token.
//! - `credentialFingerprint`: [`FINGERPRINT`], a fixed string that is neither a thumbprint nor a token-hash prefix,
//!   so a trigger log line or token from a proving grant is never mistaken for a real caller's.
//! - `policyVersion`: the version of the policy given with `--policy`, else [`NO_POLICY_VERSION`].
//! - never `certThumbprint`.
//!
//! The token these claims go into is discarded unread, like every proving grant's. Neither the key set nor the
//! signed metadata is ever printed: the key set's `Debug` shows key ids only, and the metadata (which carries the
//! MAC) exists only inside one request.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use tb_shared::context::claims::{self, CallerClaims};
use tb_shared::context::{AuthMethod, CallerContext, KeySet};
use tb_shared::ids::CallerId;

/// `credentialFingerprint` of every proving grant: clearly not a certificate thumbprint or a JWT hash prefix.
pub const FINGERPRINT: &str = "brokerctl-rotate-secret";
/// `callerId` of a proving grant when the command names no caller (`--client` or `--name` instead of `--caller`).
pub const UNNAMED_CALLER: &str = "brokerctl-rotate-secret";
/// `policyVersion` of a proving grant when the command was given no policy.
pub const NO_POLICY_VERSION: &str = "brokerctl-no-policy";

/// The caller claims of the proving grants and the key set that signs them.
#[derive(Debug, Clone)]
pub struct ProvingClaims {
    claims: CallerClaims,
    keys: Arc<KeySet>,
    parameter: String,
}

impl ProvingClaims {
    /// Claims for `caller` (else [`UNNAMED_CALLER`]) under `policy_version` (else [`NO_POLICY_VERSION`]), signed
    /// with `keys`, read from the SSM parameter `parameter` (named in messages only).
    pub fn new(
        caller: Option<&str>,
        policy_version: Option<&str>,
        keys: KeySet,
        parameter: impl Into<String>,
    ) -> Result<Self, String> {
        let id = caller.unwrap_or(UNNAMED_CALLER);
        let caller_id = CallerId::try_from(id).map_err(|e| format!("caller id {id:?}: {e}"))?;
        let context = CallerContext {
            caller_id,
            auth_method: AuthMethod::Jwt,
            credential_fingerprint: FINGERPRINT.to_owned(),
            policy_version: policy_version.unwrap_or(NO_POLICY_VERSION).to_owned(),
        };
        Ok(ProvingClaims {
            claims: CallerClaims { context, cert_thumbprint: None },
            keys: Arc::new(keys),
            parameter: parameter.into(),
        })
    }

    /// The claims every proving grant carries.
    pub fn claims(&self) -> &CallerClaims {
        &self.claims
    }

    /// The SSM parameter the key set was read from.
    pub fn parameter(&self) -> &str {
        &self.parameter
    }

    /// The client metadata of one token request for `app_client_id` at `now`, exactly as the broker makes it (the
    /// signing key, [`claims::CLAIMS_TTL`]). It carries a MAC: send it, never print it.
    pub fn metadata(&self, app_client_id: &str, now: SystemTime) -> BTreeMap<String, String> {
        claims::sign(&self.claims, app_client_id, &self.keys, now, claims::CLAIMS_TTL)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use base64::Engine as _;
    use tb_shared::context::claims::{verify, META_CERT_THUMBPRINT, META_MAC};

    use super::*;

    const CLIENT: &str = "3n4b5urk1ft4fl3mg5e62d9ado";
    const KEY: [u8; 32] = *b"brokerctl-claims-test-key-32byte";

    fn keys() -> KeySet {
        KeySet::single("k1", KEY.to_vec()).unwrap()
    }

    fn verified(p: &ProvingClaims, client: &str) -> Result<CallerClaims, claims::ClaimsError> {
        let m: HashMap<String, String> = p.metadata(CLIENT, SystemTime::now()).into_iter().collect();
        verify(&m, client, &keys(), SystemTime::now())
    }

    #[test]
    fn the_metadata_verifies_as_the_trigger_checks_it_and_says_what_it_is() {
        let p = ProvingClaims::new(Some("order-processing"), Some("0123456789abcdef"), keys(), "/tb/ctx").unwrap();
        let c = verified(&p, CLIENT).unwrap();
        assert_eq!(c.context.caller_id.as_str(), "order-processing");
        assert_eq!(c.context.auth_method, AuthMethod::Jwt);
        assert_eq!(c.context.credential_fingerprint, FINGERPRINT);
        assert!(!claims::is_thumbprint(&c.context.credential_fingerprint));
        assert_eq!(c.context.policy_version, "0123456789abcdef");
        assert_eq!(c.cert_thumbprint, None);
        assert!(!p.metadata(CLIENT, SystemTime::now()).contains_key(META_CERT_THUMBPRINT));
        // Signed for one app client: another's trigger event does not verify.
        assert_eq!(verified(&p, "another-client"), Err(claims::ClaimsError::Mismatch));
    }

    #[test]
    fn without_caller_or_policy_the_markers_are_used_and_still_verify() {
        let p = ProvingClaims::new(None, None, keys(), "/tb/ctx").unwrap();
        let c = verified(&p, CLIENT).unwrap();
        assert_eq!(c.context.caller_id.as_str(), UNNAMED_CALLER);
        assert_eq!(c.context.policy_version, NO_POLICY_VERSION);
        assert!(ProvingClaims::new(Some("has space"), None, keys(), "/tb/ctx").is_err());
    }

    #[test]
    fn debug_shows_neither_key_nor_mac() {
        let p = ProvingClaims::new(Some("order-processing"), None, keys(), "/tb/ctx").unwrap();
        let shown = format!("{p:?}");
        let mac = p.metadata(CLIENT, SystemTime::now())[META_MAC].clone();
        for secret in [
            base64::engine::general_purpose::STANDARD.encode(KEY),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(KEY),
            String::from_utf8_lossy(&KEY).into_owned(),
            mac,
        ] {
            assert!(!shown.contains(&secret), "{shown}");
        }
        assert!(shown.contains("k1") && shown.contains("order-processing"), "{shown}");
    }
}
