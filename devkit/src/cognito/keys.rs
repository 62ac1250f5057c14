//! Signing keys, access-token claims and verification. NOT FOR PRODUCTION.
//!
//! Why RSA-2048 generated at start: Cognito signs access tokens with RS256 and publishes RSA keys in its JWKS, and a
//! key made per run can never be committed or expire in the repository.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The claims of a Cognito client_credentials access token, in the order Cognito writes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    /// The app client id (for M2M tokens Cognito puts the client id here, not a user's UUID).
    pub sub: String,
    /// Always `access`.
    pub token_use: String,
    /// The granted scopes, space separated.
    pub scope: String,
    /// When the client authenticated (seconds since the epoch); equal to `iat` for client_credentials.
    pub auth_time: u64,
    /// The issuer, `<base>/<pool id>`.
    pub iss: String,
    /// Expiry (seconds since the epoch).
    pub exp: u64,
    /// Issued at (seconds since the epoch).
    pub iat: u64,
    /// Cognito's access-token format version, 2.
    pub version: u32,
    /// A random UUID naming this token.
    pub jti: String,
    /// The app client id.
    pub client_id: String,
    /// Every other claim, by name: what a pre-token-generation trigger added (for example the broker's caller
    /// claims and `cnf`). Empty in a token no trigger touched, as in Cognito's.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl AccessTokenClaims {
    /// The granted scopes as a list.
    pub fn scopes(&self) -> Vec<&str> {
        self.scope.split(' ').filter(|s| !s.is_empty()).collect()
    }

    /// A claim outside Cognito's fixed set (see [`AccessTokenClaims::extra`]), e.g. `tb:callerId` or `cnf`.
    pub fn claim(&self, name: &str) -> Option<&serde_json::Value> {
        self.extra.get(name)
    }
}

/// Why a token did not verify. Messages never contain the token.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    /// Not a JWT, or its header or claims are not the expected JSON.
    #[error("token is malformed")]
    Malformed,
    /// The header names an algorithm other than RS256.
    #[error("token algorithm is not RS256")]
    WrongAlgorithm,
    /// No `kid` in the header, or no key with that `kid` in the JWKS.
    #[error("token key id is missing or unknown")]
    UnknownKey,
    /// The signature does not verify.
    #[error("token signature is invalid")]
    BadSignature,
    /// `exp` is in the past.
    #[error("token has expired")]
    Expired,
    /// `iss` is not the expected issuer.
    #[error("token issuer is not the expected issuer")]
    WrongIssuer,
    /// A claim Cognito always sets is missing or has the wrong type.
    #[error("token claim {0} is missing or invalid")]
    BadClaim(String),
    /// `token_use` is not `access`.
    #[error("token is not an access token")]
    NotAccessToken,
}

/// Verifies a Cognito-style access token against a JWKS: RS256 only, key chosen by `kid`, signature, `iss` equal to
/// `expected_issuer`, `exp` in the future (no leeway), `token_use` = `access`. There is no `aud` in Cognito access
/// tokens, so none is checked. Works for any JWKS in Cognito's shape, not only this stand-in's.
pub fn verify_access_token_with_jwks(
    jwks: &JwkSet,
    expected_issuer: &str,
    token: &str,
) -> Result<AccessTokenClaims, VerifyError> {
    use jsonwebtoken::errors::ErrorKind;

    let header = jsonwebtoken::decode_header(token).map_err(|_| VerifyError::Malformed)?;
    if header.alg != Algorithm::RS256 {
        return Err(VerifyError::WrongAlgorithm);
    }
    let kid = header.kid.ok_or(VerifyError::UnknownKey)?;
    let jwk = jwks.find(&kid).ok_or(VerifyError::UnknownKey)?;
    if !matches!(jwk.algorithm, AlgorithmParameters::RSA(_)) {
        return Err(VerifyError::UnknownKey);
    }
    let key = DecodingKey::from_jwk(jwk).map_err(|_| VerifyError::UnknownKey)?;

    let mut validation = Validation::new(Algorithm::RS256);
    validation.leeway = 0;
    validation.validate_aud = false;
    validation.set_issuer(&[expected_issuer]);
    validation.set_required_spec_claims(&["exp", "iss", "sub"]);

    let data = jsonwebtoken::decode::<AccessTokenClaims>(token, &key, &validation).map_err(|e| match e.kind() {
        ErrorKind::InvalidSignature => VerifyError::BadSignature,
        ErrorKind::ExpiredSignature => VerifyError::Expired,
        ErrorKind::InvalidIssuer => VerifyError::WrongIssuer,
        ErrorKind::InvalidAlgorithm => VerifyError::WrongAlgorithm,
        ErrorKind::MissingRequiredClaim(c) | ErrorKind::InvalidClaimFormat(c) => VerifyError::BadClaim(c.clone()),
        ErrorKind::Json(_) => VerifyError::BadClaim("(claims)".to_owned()),
        _ => VerifyError::Malformed,
    })?;
    if data.claims.token_use != "access" {
        return Err(VerifyError::NotAccessToken);
    }
    Ok(data.claims)
}

/// One RSA signing key with its public JWK.
pub(super) struct SigningKey {
    kid: String,
    encoding: EncodingKey,
    jwk: Jwk,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("kid", &self.kid).field("private_key", &"<redacted>").finish()
    }
}

fn io_err(what: &str, e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(format!("{what}: {e}"))
}

impl SigningKey {
    /// Generates an RSA-2048 key off the async runtime (key generation takes tens of milliseconds).
    pub(super) async fn generate() -> std::io::Result<Self> {
        tokio::task::spawn_blocking(Self::generate_blocking).await.map_err(|e| io_err("key generation task", e))?
    }

    fn generate_blocking() -> std::io::Result<Self> {
        let kp = rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
            .map_err(|e| io_err("RSA key generation", e))?;
        let encoding =
            EncodingKey::from_rsa_pem(kp.serialize_pem().as_bytes()).map_err(|e| io_err("RSA signing key", e))?;
        let mut jwk = Jwk::from_encoding_key(&encoding, Algorithm::RS256).map_err(|e| io_err("RSA public key", e))?;
        let AlgorithmParameters::RSA(rsa) = &jwk.algorithm else {
            return Err(io_err("RSA public key", "not an RSA JWK"));
        };
        // RFC 7638 thumbprint: a stable, collision-free kid derived from the public key alone.
        let canonical = format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, rsa.e, rsa.n);
        let kid = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()));
        jwk.common.key_id = Some(kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        Ok(Self { kid, encoding, jwk })
    }

    pub(super) fn kid(&self) -> &str {
        &self.kid
    }

    /// Signs claims with a header like Cognito's: `{"kid":..,"alg":"RS256"}`, no `typ`.
    pub(super) fn sign(&self, claims: &AccessTokenClaims) -> Result<String, jsonwebtoken::errors::Error> {
        let mut header = Header::new(Algorithm::RS256);
        header.typ = None;
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding)
    }
}

/// The keys in the JWKS; the last one signs new tokens.
#[derive(Debug)]
pub(super) struct KeyRing {
    keys: Vec<SigningKey>,
    current: SigningKey,
}

impl KeyRing {
    pub(super) async fn generate() -> std::io::Result<Self> {
        Ok(Self { keys: Vec::new(), current: SigningKey::generate().await? })
    }

    pub(super) fn current(&self) -> &SigningKey {
        &self.current
    }

    pub(super) fn current_kid(&self) -> &str {
        self.current.kid()
    }

    /// Makes `key` the signing key, keeping the old one published.
    pub(super) fn push(&mut self, key: SigningKey) {
        let old = std::mem::replace(&mut self.current, key);
        self.keys.push(old);
    }

    pub(super) fn jwks(&self) -> JwkSet {
        let mut keys: Vec<Jwk> = self.keys.iter().map(|k| k.jwk.clone()).collect();
        keys.push(self.current.jwk.clone());
        JwkSet { keys }
    }
}

/// Seconds since the epoch.
pub(super) fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// A random version-4 UUID string, the form of Cognito's `jti`.
pub(super) fn random_uuid() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}
