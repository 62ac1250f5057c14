//! NOT FOR PRODUCTION. A partner's side of JWT authentication, for tests, benchmarks and the local stack: signing
//! keys generated at run time, their JWKS, a signer that builds any token an attacker could send (custom header
//! JSON including `alg: none`, `crit`, `jku`, `x5u`, raw payload bytes, HS256 with arbitrary secrets), and a
//! loopback JWKS server that counts every request it receives.
//!
//! Keys are made fresh in every process, so nothing here can expire or leak from the repository.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{json, Map, Value};

/// Why a key could not be made or a token not signed.
#[derive(Debug, thiserror::Error)]
pub enum DevJwtError {
    #[error("key generation failed: {0}")]
    KeyGen(String),
    #[error("signing failed: {0}")]
    Sign(String),
    #[error("JWKS server: {0}")]
    Server(#[from] std::io::Error),
}

/// A partner signing key: RSA-2048 (RS256/PS256) or P-256 (ES256).
pub struct PartnerKey {
    kid: String,
    alg: Algorithm,
    encoding: EncodingKey,
    jwk: Value,
    spki_der: Vec<u8>,
    spki_pem: String,
    raw_public: Vec<u8>,
}

impl std::fmt::Debug for PartnerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartnerKey").field("kid", &self.kid).field("alg", &self.alg).finish_non_exhaustive()
    }
}

impl PartnerKey {
    /// A fresh RSA-2048 key whose default algorithm is RS256 (it can also sign PS256 and the other RSA algorithms
    /// through [`PartnerKey::sign_with`]).
    pub fn rsa(kid: &str) -> Result<Self, DevJwtError> {
        Self::generate(kid, &rcgen::PKCS_RSA_SHA256, Algorithm::RS256)
    }

    /// A fresh RSA-2048 key whose default algorithm is PS256.
    pub fn rsa_pss(kid: &str) -> Result<Self, DevJwtError> {
        Self::generate(kid, &rcgen::PKCS_RSA_SHA256, Algorithm::PS256)
    }

    /// A fresh P-256 key for ES256.
    pub fn ec_p256(kid: &str) -> Result<Self, DevJwtError> {
        Self::generate(kid, &rcgen::PKCS_ECDSA_P256_SHA256, Algorithm::ES256)
    }

    fn generate(kid: &str, sig: &'static rcgen::SignatureAlgorithm, alg: Algorithm) -> Result<Self, DevJwtError> {
        let kp = rcgen::KeyPair::generate_for(sig).map_err(|e| DevJwtError::KeyGen(e.to_string()))?;
        let pem = kp.serialize_pem();
        let encoding = match alg {
            Algorithm::ES256 => EncodingKey::from_ec_pem(pem.as_bytes()),
            _ => EncodingKey::from_rsa_pem(pem.as_bytes()),
        }
        .map_err(|e| DevJwtError::KeyGen(e.to_string()))?;
        let jwk = Jwk::from_encoding_key(&encoding, alg).map_err(|e| DevJwtError::KeyGen(e.to_string()))?;
        let mut jwk = serde_json::to_value(jwk).map_err(|e| DevJwtError::KeyGen(e.to_string()))?;
        if let Some(m) = jwk.as_object_mut() {
            m.insert("kid".into(), json!(kid));
            m.insert("use".into(), json!("sig"));
            m.insert("alg".into(), json!(alg_name(alg)));
        }
        Ok(PartnerKey {
            kid: kid.to_owned(),
            alg,
            encoding,
            jwk,
            spki_der: rcgen::PublicKeyData::subject_public_key_info(&kp),
            spki_pem: kp.public_key_pem(),
            raw_public: kp.public_key_raw().to_vec(),
        })
    }

    /// The key id put in tokens and in the JWK.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm [`PartnerKey::sign`] uses.
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// The public JWK: `kty`, `kid`, `use: sig`, `alg` and the key parameters. Edit the returned value to publish
    /// a key with another `use`, `alg` or `kid`.
    pub fn jwk(&self) -> Value {
        self.jwk.clone()
    }

    /// A JWKS document holding only this key.
    pub fn jwks(&self) -> Value {
        jwks([self.jwk()])
    }

    /// The SubjectPublicKeyInfo as PEM (`-----BEGIN PUBLIC KEY-----`), e.g. as an HMAC secret in confusion attacks.
    pub fn public_key_pem(&self) -> &str {
        &self.spki_pem
    }

    /// The SubjectPublicKeyInfo as DER.
    pub fn public_key_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// The bare public key: PKCS#1 `RSAPublicKey` DER for RSA, the uncompressed point for EC.
    pub fn public_key_raw(&self) -> &[u8] {
        &self.raw_public
    }

    /// The header this key puts on a token by default: `{"alg", "typ": "JWT", "kid"}`.
    pub fn header(&self) -> Map<String, Value> {
        let mut h = Map::new();
        h.insert("alg".into(), json!(alg_name(self.alg)));
        h.insert("typ".into(), json!("JWT"));
        h.insert("kid".into(), json!(self.kid));
        h
    }

    /// Signs `claims` with this key's algorithm after `tweak` edited the default header. The header may say
    /// anything (another `alg`, no `kid`, `crit`, `jku`...): the signature is still made with this key and
    /// algorithm, as an attacker holding the key would.
    pub fn sign(&self, claims: &Value, tweak: impl FnOnce(&mut Map<String, Value>)) -> Result<String, DevJwtError> {
        let mut h = self.header();
        tweak(&mut h);
        self.sign_with(self.alg, &Value::Object(h), claims.to_string().as_bytes())
    }

    /// Signs raw header JSON and raw payload bytes with algorithm `alg` (which must fit the key's type).
    pub fn sign_with(&self, alg: Algorithm, header: &Value, payload: &[u8]) -> Result<String, DevJwtError> {
        let input = signing_input(header.to_string().as_bytes(), payload);
        let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &self.encoding, alg)
            .map_err(|e| DevJwtError::Sign(e.to_string()))?;
        Ok(format!("{input}.{sig}"))
    }

    /// Signs header and payload given as raw JSON text with algorithm `alg`: for what a `Value` cannot hold, such as
    /// a member name that occurs twice (`{"alg":"RS256","alg":"none"}`) or an escaped spelling of one.
    pub fn sign_raw(&self, alg: Algorithm, header_json: &str, payload_json: &str) -> Result<String, DevJwtError> {
        let input = signing_input(header_json.as_bytes(), payload_json.as_bytes());
        let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &self.encoding, alg)
            .map_err(|e| DevJwtError::Sign(e.to_string()))?;
        Ok(format!("{input}.{sig}"))
    }

    /// A token with the default header and `claims`.
    pub fn token(&self, claims: &Value) -> Result<String, DevJwtError> {
        self.sign(claims, |_| {})
    }
}

/// The JOSE name of an algorithm.
pub fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::EdDSA => "EdDSA",
        _ => "unknown",
    }
}

/// A JWKS document (`{"keys": [...]}`) from JWK values.
pub fn jwks(keys: impl IntoIterator<Item = Value>) -> Value {
    json!({ "keys": keys.into_iter().collect::<Vec<_>>() })
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn signing_input(header: &[u8], payload: &[u8]) -> String {
    format!("{}.{}", b64(header), b64(payload))
}

/// An HS256 token over raw header JSON and payload bytes with an arbitrary secret (for example a partner's public
/// key bytes, the classic RS/HS confusion attack).
pub fn sign_hs256(secret: &[u8], header: &Value, payload: &[u8]) -> Result<String, DevJwtError> {
    let input = signing_input(header.to_string().as_bytes(), payload);
    let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &EncodingKey::from_secret(secret), Algorithm::HS256)
        .map_err(|e| DevJwtError::Sign(e.to_string()))?;
    Ok(format!("{input}.{sig}"))
}

/// A token with arbitrary header JSON, payload bytes and signature bytes (empty for an `alg: none` token).
pub fn unsigned(header: &Value, payload: &[u8], signature: &[u8]) -> String {
    format!("{}.{}", signing_input(header.to_string().as_bytes(), payload), b64(signature))
}

/// Current Unix time in seconds.
pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Claims a well-behaved partner sends: iss, sub, aud, iat = nbf = now, exp = now + 300, and a jti.
pub fn standard_claims(iss: &str, sub: &str, aud: &str) -> Value {
    let now = now();
    json!({
        "iss": iss,
        "sub": sub,
        "aud": aud,
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": format!("{:016x}", rand::random::<u64>()),
    })
}

/// A loopback JWKS server: serves its current document on every path and counts every request (whatever the path),
/// so a test can prove that a `jku`/`x5u` pointing at it was never followed.
#[derive(Debug, Clone)]
pub struct JwksServer {
    /// `http://127.0.0.1:PORT/.well-known/jwks.json`
    pub url: String,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    requests: Arc<AtomicU64>,
    doc: Arc<RwLock<Value>>,
}

impl JwksServer {
    /// Requests received so far, on any path.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }

    /// Replaces the served document (a partner's key rotation).
    pub fn set_doc(&self, doc: Value) {
        *tb_shared::sync::write(&self.doc) = doc;
    }

    /// Starts a server on 127.0.0.1 with an ephemeral port; it runs until the handle is aborted or the runtime
    /// ends.
    pub async fn start(doc: Value) -> Result<(Self, tokio::task::JoinHandle<()>), DevJwtError> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let requests = Arc::new(AtomicU64::new(0));
        let doc = Arc::new(RwLock::new(doc));
        let (r, d) = (requests.clone(), doc.clone());
        let app = axum::Router::new().fallback(move || {
            let (r, d) = (r.clone(), d.clone());
            async move {
                r.fetch_add(1, Ordering::SeqCst);
                let body = tb_shared::sync::read(&d).to_string();
                ([(http::header::CONTENT_TYPE, "application/json")], body)
            }
        });
        let handle = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!(error = %e, "JWKS test server stopped");
            }
        });
        let base = format!("http://{addr}");
        Ok((JwksServer { url: format!("{base}/.well-known/jwks.json"), base, requests, doc }, handle))
    }
}

/// Starts a [`JwksServer`] serving `doc`: returns its JWKS URL, the server task and its request counter.
pub async fn serve_jwks(doc: Value) -> Result<(String, tokio::task::JoinHandle<()>, Arc<AtomicU64>), DevJwtError> {
    let (server, handle) = JwksServer::start(doc).await?;
    Ok((server.url.clone(), handle, server.requests.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{decode, DecodingKey, Validation};

    #[test]
    fn keys_sign_tokens_that_their_jwk_verifies() {
        for key in [PartnerKey::rsa("r").unwrap(), PartnerKey::ec_p256("e").unwrap()] {
            let claims = standard_claims("https://idp", "s", "aud");
            let token = key.token(&claims).unwrap();
            let jwk: Jwk = serde_json::from_value(key.jwk()).unwrap();
            let mut v = Validation::new(key.alg());
            v.set_audience(&["aud"]);
            let got = decode::<Value>(&token, &DecodingKey::from_jwk(&jwk).unwrap(), &v).unwrap();
            assert_eq!(got.claims, claims);
            assert_eq!(key.jwk()["kid"], json!(key.kid()));
            assert_eq!(key.jwk()["use"], json!("sig"));
        }
    }

    #[test]
    fn pss_and_tweaked_headers() {
        let key = PartnerKey::rsa_pss("p").unwrap();
        let t = key.sign(&json!({"a": 1}), |h| drop(h.insert("crit".into(), json!(["exp"])))).unwrap();
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(t.split('.').next().unwrap()).unwrap()).unwrap();
        assert_eq!(header["alg"], json!("PS256"));
        assert_eq!(header["crit"], json!(["exp"]));
        let none = unsigned(&json!({"alg": "none"}), b"{}", b"");
        assert!(none.ends_with('.'));
        assert_eq!(sign_hs256(b"k", &json!({"alg":"HS256"}), b"{}").unwrap().split('.').count(), 3);
        assert!(key.public_key_pem().starts_with("-----BEGIN PUBLIC KEY-----"));
        assert!(!key.public_key_der().is_empty() && !key.public_key_raw().is_empty());
    }

    #[tokio::test]
    async fn server_serves_and_counts() {
        let key = PartnerKey::ec_p256("e").unwrap();
        let (server, handle) = JwksServer::start(key.jwks()).await.unwrap();
        let body = fetch(&server.url).await;
        assert_eq!(serde_json::from_str::<Value>(&body).unwrap(), key.jwks());
        fetch(&format!("{}/anything", server.base)).await;
        assert_eq!(server.requests(), 2);
        server.set_doc(jwks([]));
        assert_eq!(fetch(&server.url).await, r#"{"keys":[]}"#);
        handle.abort();
    }

    /// A minimal HTTP/1.0 GET, so the devkit needs no HTTP client dependency for its own test.
    async fn fetch(url: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let rest = url.strip_prefix("http://").unwrap();
        let (host, path) = rest.split_once('/').map_or((rest, "/".to_owned()), |(h, p)| (h, format!("/{p}")));
        let mut s = tokio::net::TcpStream::connect(host).await.unwrap();
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out.split_once("\r\n\r\n").unwrap().1.to_owned()
    }
}
