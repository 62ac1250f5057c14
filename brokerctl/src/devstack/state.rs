//! The local stack's state directory (default `./.devstack/`, ignored by git): a development CA, client and server
//! certificates, a partner signing key, the Cognito stand-in's app-client secrets and the policy.
//!
//! Keys and certificates are generated on first run and kept, so the curl commands printed at start keep working
//! across restarts and a developer can point other tools at stable files. Only what depends on the running stack is
//! rewritten at each start: the CRL (re-signed so it never goes stale; revoked serials are kept in `revoked.txt`),
//! the policy (its JWKS URL names the port the partner JWKS server got) and the sample partner JWT (partner tokens
//! live five minutes). Everything here is for development only and says so in its subject names.
//!
//! The certificates, keys and CRLs are made by the test PKI of `tb_devkit::pki`; the CA is reloaded from `ca.pem`
//! and `ca.key` at every start.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tb_devkit::pki::{KeyKind, TestCa};

/// The organisation on every development certificate: nobody should mistake these for real ones.
const DEV_ORG: &str = "token-broker local stack (NOT FOR PRODUCTION)";
/// The development root CA's common name.
pub const CA_CN: &str = "token-broker dev Root CA";
/// Partner issuer (`iss`) of the sample partner.
pub const PARTNER_ISSUER: &str = "https://partner-idp.dev.localhost";
/// Subject (`sub`) of the sample partner.
pub const PARTNER_SUBJECT: &str = "acme-billing-sync";
/// Audience partner tokens must carry.
pub const PARTNER_AUDIENCE: &str = "https://token-broker.dev.localhost";
/// Key id of the partner's signing key.
pub const PARTNER_KID: &str = "acme-dev-1";
/// How long a freshly minted partner JWT lives (the policy's `max_token_age_seconds` is 300).
pub const PARTNER_TOKEN_LIFETIME: Duration = Duration::from_secs(300);
/// How long each CRL written at start is valid; the stack re-signs it at every start and every revocation.
const CRL_VALIDITY: Duration = Duration::from_secs(7 * 86_400);
const DAY: Duration = Duration::from_secs(86_400);

/// One example client: its name (file stem), its URI or DNS SAN, and the caller it belongs to (None: trusted but
/// unregistered, the certificate that shows a 403).
#[derive(Debug, Clone, Copy)]
pub struct ExampleClient {
    pub name: &'static str,
    pub san_uri: Option<&'static str>,
    pub san_dns: Option<&'static str>,
    pub caller: Option<&'static str>,
    pub describe: &'static str,
}

/// The example order-processing and reporting services, plus a certificate no caller owns.
pub const CLIENTS: [ExampleClient; 3] = [
    ExampleClient {
        name: "order-processing",
        san_uri: Some("spiffe://example.internal/ns/orders/sa/order-processing"),
        san_dns: None,
        caller: Some("order-processing"),
        describe: "read, write and admin",
    },
    ExampleClient {
        name: "reporting",
        san_uri: None,
        san_dns: Some("reporting.svc.example.internal"),
        caller: Some("reporting"),
        describe: "read only, 3 grants a day",
    },
    ExampleClient {
        name: "stranger",
        san_uri: Some("spiffe://example.internal/ns/misc/sa/stranger"),
        san_dns: None,
        caller: None,
        describe: "trusted certificate that no caller owns (403)",
    },
];

/// How the broker gets an example app client's tokens from the Cognito stand-in (the credentials' `upstream`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DevUpstream {
    /// The hosted `/oauth2/token` endpoint (client_credentials grant).
    TokenEndpoint,
    /// Cognito's `GetClientToken` API (an app client whose only flow is `ALLOW_CLIENT_TOKEN_AUTH`).
    GetClientToken,
}

/// One Cognito app client of the stand-in.
#[derive(Debug, Clone, Copy)]
pub struct AppClient {
    /// The app client's name: the policy caller's `cognito_client` and the SSM parameter's last segment.
    pub name: &'static str,
    /// The scopes Cognito would allow it.
    pub scopes: &'static [&'static str],
    /// Its access-token validity in seconds.
    pub token_validity_secs: u64,
    /// Where the broker asks for its tokens.
    pub upstream: DevUpstream,
}

/// The Cognito app clients of the stand-in, one per policy caller (`cognito_client`), with the scopes Cognito
/// would allow them and their access-token validity (the broker refuses a token that outlives the caller's
/// `max_token_lifetime_seconds`, so each matches its caller's policy, as an operator would configure it). One of
/// them gets its tokens from `GetClientToken`, so the local stack shows both upstream modes; which mode an app client
/// uses is decided here at every start (the state directory keeps only secrets), so an existing `.devstack/` keeps
/// working.
pub const APP_CLIENTS: [AppClient; 3] = [
    AppClient {
        name: "order-processing",
        scopes: &["customer-api/read", "customer-api/write", "customer-api/admin"],
        token_validity_secs: 3600,
        upstream: DevUpstream::TokenEndpoint,
    },
    AppClient {
        name: "reporting",
        scopes: &["customer-api/read"],
        token_validity_secs: 3600,
        upstream: DevUpstream::GetClientToken,
    },
    AppClient {
        name: "partner-acme",
        scopes: &["customer-api/read"],
        token_validity_secs: 900,
        upstream: DevUpstream::TokenEndpoint,
    },
];

/// Why the state directory could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("key or certificate generation: {0}")]
    Pki(String),
    #[error("{path}: {reason}")]
    Corrupt { path: String, reason: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |source| StateError::Io { path: path.display().to_string(), source }
}

fn pki<E: std::fmt::Display>(e: E) -> StateError {
    StateError::Pki(e.to_string())
}

/// Paths of everything in the state directory.
#[derive(Debug, Clone)]
pub struct StatePaths {
    pub dir: PathBuf,
}

impl StatePaths {
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
    pub fn ca_key(&self) -> PathBuf {
        self.dir.join("ca.key")
    }
    /// The truststore bundle: what API Gateway's custom domain and the authorizer trust.
    pub fn truststore(&self) -> PathBuf {
        self.dir.join("truststore.pem")
    }
    pub fn crl(&self) -> PathBuf {
        self.dir.join("crl.pem")
    }
    pub fn revoked(&self) -> PathBuf {
        self.dir.join("revoked.txt")
    }
    pub fn server_cert(&self) -> PathBuf {
        self.dir.join("server.pem")
    }
    pub fn server_key(&self) -> PathBuf {
        self.dir.join("server.key")
    }
    pub fn client_cert(&self, name: &str) -> PathBuf {
        self.dir.join("clients").join(format!("{name}.pem"))
    }
    pub fn client_key(&self, name: &str) -> PathBuf {
        self.dir.join("clients").join(format!("{name}.key"))
    }
    pub fn partner_key(&self) -> PathBuf {
        self.dir.join("partner").join("signing.key")
    }
    pub fn partner_jwks(&self) -> PathBuf {
        self.dir.join("partner").join("jwks.json")
    }
    pub fn partner_jwt(&self) -> PathBuf {
        self.dir.join("partner").join("token.jwt")
    }
    pub fn secrets(&self) -> PathBuf {
        self.dir.join("secrets.json")
    }
    pub fn policy(&self) -> PathBuf {
        self.dir.join("policy.yaml")
    }
}

/// The Cognito stand-in's app-client credentials (development secrets, kept in the state directory).
#[derive(Clone, Serialize, Deserialize)]
pub struct AppClientSecret {
    pub app_client: String,
    pub client_id: String,
    pub client_secret: String,
}

impl std::fmt::Debug for AppClientSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppClientSecret")
            .field("app_client", &self.app_client)
            .field("client_id", &self.client_id)
            .finish()
    }
}

/// Everything loaded from (or created in) the state directory.
pub struct DevState {
    pub paths: StatePaths,
    pub ca_cert_pem: String,
    ca: TestCa,
    pub server_cert_pem: String,
    pub server_key_pem: String,
    pub partner_key_pem: String,
    pub secrets: Vec<AppClientSecret>,
    /// Whether this start created the directory.
    pub created: bool,
}

impl std::fmt::Debug for DevState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevState").field("dir", &self.paths.dir).field("created", &self.created).finish()
    }
}

fn write_private(path: &Path, contents: &[u8]) -> Result<(), StateError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    std::fs::write(path, contents).map_err(io(path))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io(path))?;
    }
    Ok(())
}

fn write_public(path: &Path, contents: &[u8]) -> Result<(), StateError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    std::fs::write(path, contents).map_err(io(path))
}

fn read(path: &Path) -> Result<String, StateError> {
    std::fs::read_to_string(path).map_err(io(path))
}

fn random_alnum(n: usize) -> String {
    use rand::Rng;
    const A: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..n).map(|_| char::from(A[rng.random_range(0..A.len())])).collect()
}

impl DevState {
    /// Loads the state directory, creating whatever is missing.
    pub fn open(dir: &Path) -> Result<DevState, StateError> {
        let paths = StatePaths { dir: dir.to_path_buf() };
        let created = !paths.ca_key().exists();
        if created {
            Self::create(&paths)?;
        }
        let ca_cert_pem = read(&paths.ca_cert())?;
        let ca = TestCa::from_pem(&ca_cert_pem, &read(&paths.ca_key())?).map_err(|e| StateError::Corrupt {
            path: format!("{} and {}", paths.ca_cert().display(), paths.ca_key().display()),
            reason: e.to_string(),
        })?;
        let secrets: Vec<AppClientSecret> = serde_json::from_str(&read(&paths.secrets())?)
            .map_err(|e| StateError::Corrupt { path: paths.secrets().display().to_string(), reason: e.to_string() })?;
        Ok(DevState {
            ca_cert_pem,
            ca,
            server_cert_pem: read(&paths.server_cert())?,
            server_key_pem: read(&paths.server_key())?,
            partner_key_pem: read(&paths.partner_key())?,
            secrets,
            created,
            paths,
        })
    }

    fn create(paths: &StatePaths) -> Result<(), StateError> {
        std::fs::create_dir_all(&paths.dir).map_err(io(&paths.dir))?;
        let now = SystemTime::now();
        let ca = TestCa::root_for(DEV_ORG, CA_CN, Some(0)).map_err(pki)?;

        // The HTTPS server certificate for both listeners and the resource server: localhost and 127.0.0.1.
        let server = ca
            .issue_server()
            .organization(DEV_ORG)
            .cn("localhost")
            .san_dns("localhost")
            .san_ip([127, 0, 0, 1])
            .validity(now - DAY, now + 825 * DAY)
            .build()
            .map_err(pki)?;

        for c in CLIENTS {
            let mut b = ca
                .issue_client()
                .organization(DEV_ORG)
                .cn(c.name)
                .validity(now - Duration::from_secs(3600), now + 365 * DAY);
            if let Some(u) = c.san_uri {
                b = b.san_uri(u);
            }
            if let Some(d) = c.san_dns {
                b = b.san_dns(d);
            }
            let cert = b.build().map_err(pki)?;
            write_public(&paths.client_cert(c.name), cert.pem.as_bytes())?;
            write_private(&paths.client_key(c.name), cert.key_pem.as_bytes())?;
        }

        let partner = KeyKind::EcdsaP256.generate().map_err(pki)?;
        write_private(&paths.partner_key(), partner.serialize_pem().as_bytes())?;

        let secrets: Vec<AppClientSecret> = APP_CLIENTS
            .iter()
            .map(|a| AppClientSecret {
                app_client: a.name.to_owned(),
                client_id: random_alnum(26),
                client_secret: random_alnum(51),
            })
            .collect();
        let secrets_json = serde_json::to_vec_pretty(&secrets).map_err(pki)?;
        write_private(&paths.secrets(), &secrets_json)?;

        write_public(&paths.ca_cert(), ca.cert_pem().as_bytes())?;
        write_public(&paths.truststore(), ca.cert_pem().as_bytes())?;
        write_public(&paths.server_cert(), server.pem.as_bytes())?;
        write_private(&paths.server_key(), server.key_pem.as_bytes())?;
        write_public(&paths.revoked(), b"")?;
        // The CA key last: its presence marks a complete state directory.
        write_private(&paths.ca_key(), ca.key_pem().as_bytes())?;
        Ok(())
    }

    /// The serials (raw big-endian bytes) listed in `revoked.txt` (hex, one per line).
    pub fn revoked_serials(&self) -> Result<Vec<Vec<u8>>, StateError> {
        let text = match std::fs::read_to_string(self.paths.revoked()) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(StateError::Io { path: self.paths.revoked().display().to_string(), source: e }),
        };
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(|l| {
                hex::decode(l).map_err(|_| StateError::Corrupt {
                    path: self.paths.revoked().display().to_string(),
                    reason: "not hex".into(),
                })
            })
            .collect()
    }

    /// Signs a CRL listing the revoked serials, valid from now for a week, and returns it as PEM.
    pub fn sign_crl(&self) -> Result<String, StateError> {
        let revoked = self.revoked_serials()?;
        let serials: Vec<&[u8]> = revoked.iter().map(Vec::as_slice).collect();
        let now = SystemTime::now();
        let crl = self.ca.crl(&serials, now - Duration::from_secs(60), now + CRL_VALIDITY).map_err(pki)?;
        Ok(crl.pem)
    }

    /// Writes the CRL file from `revoked.txt`.
    pub fn write_crl(&self) -> Result<String, StateError> {
        let pem = self.sign_crl()?;
        write_public(&self.paths.crl(), pem.as_bytes())?;
        Ok(pem)
    }

    /// Adds a client certificate's serial to `revoked.txt` and re-signs the CRL file. Returns the new CRL.
    pub fn revoke(&self, client: &str) -> Result<String, StateError> {
        let path = self.paths.client_cert(client);
        let pem = read(&path)?;
        let serial = x509_parser::pem::parse_x509_pem(pem.as_bytes())
            .ok()
            .and_then(|(_, p)| p.parse_x509().ok().map(|c| c.tbs_certificate.raw_serial().to_vec()))
            .ok_or_else(|| StateError::Corrupt {
                path: path.display().to_string(),
                reason: "not a certificate".into(),
            })?;
        let mut serials = self.revoked_serials()?;
        if !serials.contains(&serial) {
            serials.push(serial);
        }
        let text: String = serials.iter().map(|s| format!("{}\n", hex::encode(s))).collect();
        write_public(&self.paths.revoked(), text.as_bytes())?;
        self.write_crl()
    }

    /// The partner's public JWKS (one P-256 key, `use: sig`, `alg: ES256`).
    pub fn partner_jwks(&self) -> Result<serde_json::Value, StateError> {
        let enc = jsonwebtoken::EncodingKey::from_ec_pem(self.partner_key_pem.as_bytes()).map_err(pki)?;
        let jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&enc, jsonwebtoken::Algorithm::ES256).map_err(pki)?;
        let mut jwk = serde_json::to_value(jwk).map_err(pki)?;
        if let Some(m) = jwk.as_object_mut() {
            m.insert("kid".into(), PARTNER_KID.into());
            m.insert("use".into(), "sig".into());
            m.insert("alg".into(), "ES256".into());
        }
        Ok(serde_json::json!({ "keys": [jwk] }))
    }

    /// A partner JWT signed with the partner key; `exp_offset` moves expiry relative to now (negative: expired).
    pub fn partner_token_with(
        &self,
        subject: &str,
        issued_ago: Duration,
        lifetime: Duration,
    ) -> Result<String, StateError> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let iat = now.saturating_sub(issued_ago.as_secs());
        let claims = serde_json::json!({
            "iss": PARTNER_ISSUER,
            "sub": subject,
            "aud": PARTNER_AUDIENCE,
            "iat": iat,
            "nbf": iat,
            "exp": iat + lifetime.as_secs(),
            "jti": random_alnum(16),
        });
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some(PARTNER_KID.into());
        header.typ = Some("JWT".into());
        let enc = jsonwebtoken::EncodingKey::from_ec_pem(self.partner_key_pem.as_bytes()).map_err(pki)?;
        jsonwebtoken::encode(&header, &claims, &enc).map_err(pki)
    }

    /// A fresh, valid partner JWT for the sample partner.
    pub fn partner_token(&self) -> Result<String, StateError> {
        self.partner_token_with(PARTNER_SUBJECT, Duration::ZERO, PARTNER_TOKEN_LIFETIME)
    }

    /// Writes the partner JWKS and a fresh sample token into the state directory.
    pub fn write_partner_files(&self) -> Result<(), StateError> {
        let jwks = self.partner_jwks()?;
        write_public(&self.paths.partner_jwks(), jwks.to_string().as_bytes())?;
        write_private(&self.paths.partner_jwt(), self.partner_token()?.as_bytes())
    }

    /// The development policy, with the partner issuer's JWKS at `jwks_url`.
    pub fn policy_yaml(jwks_url: &str) -> String {
        format!(
            r#"# Generated by `brokerctl dev` at every start (the JWKS URL names this run's port). To experiment, copy it
# and start with `brokerctl dev --policy FILE`.
version: 1
settings:
  hash_caller_ids: false
callers:
  # The example order-processing service: read, write and admin, recognised by its SPIFFE URI SAN. Its tokens are
  # bound to the certificate it asks with (cnf.x5t#S256, RFC 8705): the sample resource server serves them only on
  # its mTLS listener, to a client presenting that certificate.
  - id: order-processing
    identities:
      - type: san_uri
        value: spiffe://example.internal/ns/orders/sa/order-processing
    cognito_client: order-processing
    allowed_scopes: [customer-api/read, customer-api/write, customer-api/admin]
    default_scopes: [customer-api/read]
    quotas:                     # generous, so a local load test measures the chain, not the quota
      - {{ per: minute, limit: 1000000 }}
      - {{ per: day, limit: 100000000 }}
    max_token_lifetime_seconds: 3600
    usage_plan_key: dev-usage-plan-key-order-processing
    bind_token_to_certificate: true
  # The example reporting service: read only, recognised by a DNS SAN, 3 grants a day. Its app client gets tokens
  # from Cognito's GetClientToken API (the credentials say so, not the policy).
  - id: reporting
    identities:
      - type: san_dns
        value: reporting.svc.example.internal
    cognito_client: reporting
    allowed_scopes: [customer-api/read]
    default_scopes: [customer-api/read]
    quotas:
      - {{ per: day, limit: 3 }}
    max_token_lifetime_seconds: 3600
    usage_plan_key: dev-usage-plan-key-reporting-000
  # A partner without a certificate: an ES256 JWT signed by its own key, JWKS served by the local stack.
  - id: partner-acme
    identities:
      - type: jwt
        issuer: {PARTNER_ISSUER}
        subject: {PARTNER_SUBJECT}
    cognito_client: partner-acme
    allowed_scopes: [customer-api/read]
    default_scopes: [customer-api/read]
    quotas:
      - {{ per: hour, limit: 1000 }}
    max_token_lifetime_seconds: 900
    usage_plan_key: dev-usage-plan-key-partner-acme-0
issuers:
  - issuer: {PARTNER_ISSUER}
    jwks_url: {jwks_url}
    audiences: [{PARTNER_AUDIENCE}]
    algorithms: [ES256]
    max_token_age_seconds: 300
    leeway_seconds: 30
"#
        )
    }

    /// Writes the development policy file.
    pub fn write_policy(&self, jwks_url: &str) -> Result<PathBuf, StateError> {
        let path = self.paths.policy();
        write_public(&path, Self::policy_yaml(jwks_url).as_bytes())?;
        Ok(path)
    }
}
