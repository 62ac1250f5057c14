//! NOT FOR PRODUCTION. A development stand-in for Amazon Cognito's `/oauth2/token` endpoint (client_credentials
//! grant only), with the JWKS a resource server needs to check what it issues.
//!
//! Why it exists: the broker's tests, the local stack (`brokerctl dev`) and the sample resource server need a token
//! endpoint that behaves like Cognito's — same request grammar, same client authentication, same error codes and
//! shapes, same access-token claims — over real HTTP(S) on loopback, and that can be made slow, broken, throttled or
//! have a client's secret rotated on demand. moto does not serve Cognito's hosted `/oauth2/token` and
//! `oauth2-mock-server` accepts any credentials and issues none of Cognito's claims (its tokens carry only
//! iss/iat/exp/nbf/scope).
//!
//! What it mimics, and where that comes from (Amazon Cognito Developer Guide, "The token issuer endpoint" and
//! "Understanding the access token"):
//! - `POST /oauth2/token`, `Content-Type: application/x-www-form-urlencoded` ("must always be"), form parameters
//!   `grant_type`, `scope`, `client_id`, `client_secret`, and `aws_client_metadata` ("the client metadata object
//!   URL-encoded to string", Developer Guide, pre token generation trigger): a JSON object of string values, handed
//!   to the pre-token-generation trigger; anything else there is `invalid_request`.
//! - Client authentication with HTTP Basic (`client_id:client_secret`, each form-urlencoded per RFC 6749 §2.3.1) or
//!   with `client_id` + `client_secret` in the body; a body `client_id` next to Basic must name the same client.
//! - `scope` absent: every custom scope of the app client ("If the client doesn't request any scopes, the
//!   authentication server uses all custom scopes associated with the client"). A scope the client is not allowed
//!   gets `{"error":"invalid_scope"}`, which is what Cognito answers in practice (AWS re:Post answers); the older guide
//!   text says such scopes are "ignored", which real pools do not do.
//! - Errors are HTTP 400 with a JSON body holding only `error` (the guide's sample: `HTTP/1.1 400 Bad Request`,
//!   `{"error":"invalid_request|invalid_client|invalid_grant|unauthorized_client|unsupported_grant_type"}`), no
//!   `error_description`. `invalid_client` is 400 by default, as the guide shows; [`StandinConfig::invalid_client_status`]
//!   can make it 401 (RFC 6749 §5.2) so a caller can be tested against both.
//! - 200 answers `{"access_token","expires_in","token_type":"Bearer"}` and no `scope` member: the guide's
//!   client-credentials sample has none, so a caller must read the granted scopes from the token's `scope` claim.
//! - Access tokens are RS256 JWTs with a `kid` and Cognito's M2M claims in Cognito's order: `sub` (= client id),
//!   `token_use` = `access`, `scope`, `auth_time`, `iss`, `exp`, `iat`, `version` = 2, `jti`, `client_id`. No `aud`.
//! - The issuer is `<base>/<pool id>` and the JWKS is at `<issuer>/.well-known/jwks.json`, as with
//!   `https://cognito-idp.<region>.amazonaws.com/<pool id>`; it is also served at `/.well-known/jwks.json`.
//! - A missing or wrong `Content-Type` gets HTTP 405, which is what Cognito answered in a re:Post report
//!   ("unable to get token using cognito for client credentials flow"); the JSON body is this stand-in's choice.
//!
//! What is NOT known and is a documented guess: how Cognito's OAuth endpoints answer when throttled. Its JSON API
//! answers HTTP 400 with `TooManyRequestsException` (`{"__type":"TooManyRequestsException","message":"Rate exceeded"}`);
//! [`ThrottleStyle`] offers that shape and a plain 429 so a caller can be tested against both.
//!
//! It also serves `GetClientToken`, the user-pool API operation that issues the same client-credentials access token
//! to an app client whose only flow is `ALLOW_CLIENT_TOKEN_AUTH` ([`ClientFlow::ClientTokenAuth`]); each client
//! gets tokens at one entry point only, and both share the fault switches and the token counters (see the
//! `client_token` module).
//!
//! With [`StandinConfig::pre_token_generation`] it runs a pre-token-generation trigger (event version `V3_0`)
//! before signing each client-credentials token, at both entry points, and applies its answer as Cognito does;
//! [`PreTokenGeneration::caller_claims`] is the project's own trigger (see the `pretoken` module).
//!
//! It also serves the user-pool API operations of client-secret rotation (`AddUserPoolClientSecret`,
//! `ListUserPoolClientSecrets`, `DeleteUserPoolClientSecret`) in Cognito's JSON 1.1 protocol on `POST /`, so the AWS
//! SDK pointed at [`CognitoStandin::base_url`] rotates a client's secrets here: up to two active secrets per client,
//! each accepted by the token endpoint until it is deleted (see the `api` module).
//!
//! The stand-in logs no secret and no token: it logs client ids and outcomes only, every type that holds a secret
//! prints a placeholder from `Debug`, and secrets are kept only as SHA-256 digests once the server has started.

mod api;
mod auth;
mod client_token;
mod faults;
mod issue;
mod keys;
mod pretoken;
mod secrets;
mod server;

use std::collections::HashMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use faults::{Faults, ThrottleStyle};
pub use jsonwebtoken::jwk::JwkSet;
pub use keys::{verify_access_token_with_jwks, AccessTokenClaims, VerifyError};
pub use pretoken::PreTokenGeneration;

/// Cognito's default access-token lifetime (one hour), used by [`StandinClient::new`].
pub const DEFAULT_TOKEN_VALIDITY: Duration = Duration::from_secs(3600);

/// The pool id used when a config does not name one, in Cognito's `<region>_<id>` form.
pub const DEFAULT_POOL_ID: &str = "us-east-1_devpool";

/// How long [`CognitoStandin::shutdown`] waits for in-flight requests (for example one held by a delay fault)
/// before it stops the server hard, so a test's teardown cannot hang on a fault it injected.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// How an app client gets its access tokens. Cognito makes the two exclusive: `ALLOW_CLIENT_TOKEN_AUTH` "must be the
/// only authentication flow that you configure for the app client" (API Reference, `GetClientToken`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientFlow {
    /// The OAuth 2.0 `client_credentials` grant on `POST /oauth2/token` (allowed OAuth flow
    /// `client_credentials`); `GetClientToken` is refused. What every client gets unless told otherwise.
    #[default]
    ClientCredentials,
    /// `ALLOW_CLIENT_TOKEN_AUTH`: tokens from the `GetClientToken` API operation only; `POST /oauth2/token` answers
    /// `unauthorized_client`.
    ClientTokenAuth,
}

/// One registered app client, as configured in a Cognito user pool.
#[derive(Clone)]
pub struct StandinClient {
    /// The app client id (Cognito's are 26 lowercase alphanumerics; any non-empty string works here).
    pub client_id: String,
    /// The app client secret. Kept only as a digest once the server starts.
    pub client_secret: String,
    /// Custom scopes the client may request, e.g. `customer-api/read`. Also the default grant when no scope is asked.
    pub allowed_scopes: Vec<String>,
    /// Access-token lifetime. Cognito allows 5 minutes to 1 day; shorter values are accepted here so tests of
    /// expiry and token reuse do not have to wait.
    pub token_validity: Duration,
    /// Whether the client_credentials flow is enabled for a [`ClientFlow::ClientCredentials`] client; when not,
    /// requests get `unauthorized_client`. Has no effect on a [`ClientFlow::ClientTokenAuth`] client.
    pub client_credentials_enabled: bool,
    /// Which entry point the client gets its tokens from.
    pub flow: ClientFlow,
}

impl StandinClient {
    /// A client with the client_credentials flow enabled and Cognito's default one-hour token lifetime.
    pub fn new(client_id: impl Into<String>, client_secret: impl Into<String>, allowed_scopes: &[&str]) -> Self {
        Self {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            allowed_scopes: allowed_scopes.iter().map(|s| (*s).to_owned()).collect(),
            token_validity: DEFAULT_TOKEN_VALIDITY,
            client_credentials_enabled: true,
            flow: ClientFlow::ClientCredentials,
        }
    }

    /// A client whose secret is freshly generated in Cognito's style (51 lowercase alphanumerics).
    pub fn with_random_secret(client_id: impl Into<String>, allowed_scopes: &[&str]) -> Self {
        Self::new(client_id, random_secret(), allowed_scopes)
    }

    /// Sets the access-token lifetime.
    pub fn token_validity(mut self, validity: Duration) -> Self {
        self.token_validity = validity;
        self
    }

    /// Sets how the client gets its tokens: [`ClientFlow::ClientTokenAuth`] makes it a `GetClientToken` client.
    pub fn flow(mut self, flow: ClientFlow) -> Self {
        self.flow = flow;
        self
    }
}

impl fmt::Debug for StandinClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StandinClient")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("allowed_scopes", &self.allowed_scopes)
            .field("token_validity", &self.token_validity)
            .field("client_credentials_enabled", &self.client_credentials_enabled)
            .field("flow", &self.flow)
            .finish()
    }
}

/// What the stand-in serves.
#[derive(Debug, Clone)]
pub struct StandinConfig {
    /// The registered app clients.
    pub clients: Vec<StandinClient>,
    /// The user pool id that ends the issuer, e.g. `us-east-1_devpool` gives `http://127.0.0.1:PORT/us-east-1_devpool`.
    /// Letters, digits, `_` and `-` only; empty makes the issuer the bare base URL.
    pub issuer_path: String,
    /// HTTP status for `invalid_client`: 400 as Cognito's guide shows, or 401 as RFC 6749 §5.2 allows.
    pub invalid_client_status: u16,
    /// Serve the `/_devkit/` admin routes (stats, faults, secret rotation) for the local stack. Off by default so a
    /// test never reaches them by accident.
    pub admin_routes: bool,
    /// The pool's pre-token-generation trigger (event version `V3_0`), run before every client-credentials token
    /// at both entry points; `None` (the default) runs none and ignores client metadata. See the `pretoken` module.
    pub pre_token_generation: Option<PreTokenGeneration>,
}

impl StandinConfig {
    /// A config for `clients` with the default pool id, Cognito's 400 for `invalid_client` and no admin routes.
    pub fn new(clients: Vec<StandinClient>) -> Self {
        Self { clients, ..Self::default() }
    }
}

impl Default for StandinConfig {
    fn default() -> Self {
        Self {
            clients: Vec::new(),
            issuer_path: DEFAULT_POOL_ID.to_owned(),
            invalid_client_status: 400,
            admin_routes: false,
            pre_token_generation: None,
        }
    }
}

/// A registered client as the server keeps it: its active secrets only as SHA-256 digests.
struct ClientEntry {
    secrets: secrets::ClientSecrets,
    allowed_scopes: Vec<String>,
    token_validity: Duration,
    client_credentials_enabled: bool,
    flow: ClientFlow,
}

/// Request counters. Per-client counts are kept only for registered client ids so a caller cannot grow the map.
#[derive(Default)]
struct Counters {
    token_requests: AtomicU64,
    tokens_issued: AtomicU64,
    per_client: Mutex<HashMap<String, u64>>,
    /// User-pool API calls by operation name, whatever their outcome.
    api_calls: Mutex<HashMap<&'static str, u64>>,
}

/// State shared by the handle and the request handlers.
struct Shared {
    base_url: String,
    issuer: String,
    /// The user pool id the API operations answer for ([`StandinConfig::issuer_path`], or [`DEFAULT_POOL_ID`]).
    pool_id: String,
    clients: Mutex<HashMap<String, ClientEntry>>,
    keys: RwLock<keys::KeyRing>,
    faults: Faults,
    counters: Counters,
    invalid_client_status: http::StatusCode,
    /// The trigger run before signing a client-credentials token, if any.
    pre_token_generation: RwLock<Option<PreTokenGeneration>>,
}

use tb_shared::sync::lock;

/// A running stand-in. Dropping it stops the server; [`CognitoStandin::shutdown`] stops it gracefully.
pub struct CognitoStandin {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    shutdown_tx: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl fmt::Debug for CognitoStandin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CognitoStandin")
            .field("base_url", &self.shared.base_url)
            .field("issuer", &self.shared.issuer)
            .finish()
    }
}

impl CognitoStandin {
    /// Starts the stand-in over plain HTTP on `127.0.0.1` with a port the OS picks.
    pub async fn start(cfg: StandinConfig) -> std::io::Result<Self> {
        Self::start_inner(cfg, None).await
    }

    /// Starts the stand-in over HTTPS (HTTP/1.1) on `127.0.0.1` with a port the OS picks, using the caller's rustls
    /// server config (so a test controls the certificate and whether client certificates are asked for).
    pub async fn start_tls(cfg: StandinConfig, tls: Arc<rustls::ServerConfig>) -> std::io::Result<Self> {
        Self::start_inner(cfg, Some(tls)).await
    }

    async fn start_inner(cfg: StandinConfig, tls: Option<Arc<rustls::ServerConfig>>) -> std::io::Result<Self> {
        let invalid = |msg: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, msg.to_owned());
        if !cfg.issuer_path.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            return Err(invalid("issuer_path must be letters, digits, '_' or '-'"));
        }
        let invalid_client_status = match cfg.invalid_client_status {
            400 => http::StatusCode::BAD_REQUEST,
            401 => http::StatusCode::UNAUTHORIZED,
            _ => return Err(invalid("invalid_client_status must be 400 or 401")),
        };
        let mut clients = HashMap::new();
        for c in cfg.clients {
            if c.client_id.is_empty() || c.client_id.contains(':') {
                return Err(invalid("client_id must be non-empty and must not contain ':'"));
            }
            let entry = ClientEntry {
                secrets: secrets::ClientSecrets::new(&c.client_id, &c.client_secret),
                allowed_scopes: c.allowed_scopes,
                token_validity: c.token_validity,
                client_credentials_enabled: c.client_credentials_enabled,
                flow: c.flow,
            };
            if clients.insert(c.client_id, entry).is_some() {
                return Err(invalid("duplicate client_id"));
            }
        }

        let key_ring = keys::KeyRing::generate().await?;
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let local_addr = listener.local_addr()?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let base_url = format!("{scheme}://{local_addr}");
        let issuer =
            if cfg.issuer_path.is_empty() { base_url.clone() } else { format!("{base_url}/{}", cfg.issuer_path) };

        let pool_id = if cfg.issuer_path.is_empty() { DEFAULT_POOL_ID.to_owned() } else { cfg.issuer_path.clone() };
        let shared = Arc::new(Shared {
            base_url,
            issuer,
            pool_id,
            clients: Mutex::new(clients),
            keys: RwLock::new(key_ring),
            faults: Faults::default(),
            counters: Counters::default(),
            invalid_client_status,
            pre_token_generation: RwLock::new(cfg.pre_token_generation),
        });
        let app = server::router(shared.clone(), &cfg.issuer_path, cfg.admin_routes);
        let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
        let signal = async move {
            let _ = shutdown_rx.await;
        };
        let task = match tls {
            None => tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(signal).await {
                    tracing::warn!(error = %e, "cognito stand-in server stopped with an error");
                }
            }),
            Some(tls) => {
                let listener = server::TlsListener::new(listener, tls);
                tokio::spawn(async move {
                    if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(signal).await {
                        tracing::warn!(error = %e, "cognito stand-in server stopped with an error");
                    }
                })
            }
        };
        tracing::debug!(addr = %local_addr, "cognito stand-in listening");
        Ok(Self { shared, local_addr, shutdown_tx: Some(shutdown_tx), task: Some(task) })
    }

    /// The socket address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `http(s)://127.0.0.1:PORT`, the equivalent of a user pool domain, and the endpoint URL to give the AWS SDK's
    /// Cognito client for the user-pool API operations.
    pub fn base_url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// The token endpoint, `<base>/oauth2/token`.
    pub fn token_url(&self) -> String {
        format!("{}/oauth2/token", self.shared.base_url)
    }

    /// The JWKS under the issuer, `<issuer>/.well-known/jwks.json`, as Cognito publishes it.
    pub fn jwks_url(&self) -> String {
        format!("{}/.well-known/jwks.json", self.shared.issuer)
    }

    /// The `iss` of every token, `<base>/<pool id>`.
    pub fn issuer(&self) -> String {
        self.shared.issuer.clone()
    }

    /// The fault switches; changes apply to the next request.
    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    /// The user pool id the API operations answer for.
    pub fn pool_id(&self) -> String {
        self.shared.pool_id.clone()
    }

    /// The ids of `client_id`'s active secrets, oldest first; `None` when no such client is registered.
    pub fn client_secret_ids(&self, client_id: &str) -> Option<Vec<String>> {
        lock(&self.shared.clients).get(client_id).map(|e| e.secrets.entries().iter().map(|s| s.id.clone()).collect())
    }

    /// User-pool API calls of `operation` (e.g. `AddUserPoolClientSecret`) that reached the stand-in, whatever
    /// their outcome.
    pub fn api_calls(&self, operation: &str) -> u64 {
        lock(&self.shared.counters.api_calls).get(operation).copied().unwrap_or(0)
    }

    /// Gives `client_id` a new random secret and returns it; every old secret gets `invalid_client` from now on.
    /// `None` when no such client is registered.
    pub fn rotate_secret(&self, client_id: &str) -> Option<String> {
        let secret = random_secret();
        self.set_secret(client_id, &secret).then_some(secret)
    }

    /// Sets `client_id`'s only secret to `secret`, replacing every active one (for a test that must put the same
    /// value in its own secret store first). Returns whether the client exists.
    pub fn set_secret(&self, client_id: &str, secret: &str) -> bool {
        match lock(&self.shared.clients).get_mut(client_id) {
            Some(entry) => {
                entry.secrets.replace_all(secret);
                true
            }
            None => false,
        }
    }

    /// Replaces the pool's pre-token-generation trigger (`None` removes it) for the requests that arrive from now
    /// on: for a test that rotates the trigger's key set, or switches the trigger on in a running stack.
    pub fn set_pre_token_generation(&self, trigger: Option<PreTokenGeneration>) {
        *tb_shared::sync::write(&self.shared.pre_token_generation) = trigger;
    }

    /// Registers a client at run time, replacing any client with the same id.
    pub fn upsert_client(&self, client: StandinClient) {
        let entry = ClientEntry {
            secrets: secrets::ClientSecrets::new(&client.client_id, &client.client_secret),
            allowed_scopes: client.allowed_scopes,
            token_validity: client.token_validity,
            client_credentials_enabled: client.client_credentials_enabled,
            flow: client.flow,
        };
        lock(&self.shared.clients).insert(client.client_id, entry);
    }

    /// Every token request that reached the stand-in, at `POST /oauth2/token` or as a `GetClientToken` API call,
    /// including rejected and fault-answered ones: the figure a test asserts on to prove "no upstream call".
    pub fn token_requests(&self) -> u64 {
        self.shared.counters.token_requests.load(Ordering::SeqCst)
    }

    /// Token requests that named `client_id` (in Basic or in the body of `POST /oauth2/token`, or as the `ClientId`
    /// of `GetClientToken`), whatever their outcome.
    pub fn token_requests_for(&self, client_id: &str) -> u64 {
        lock(&self.shared.counters.per_client).get(client_id).copied().unwrap_or(0)
    }

    /// Access tokens issued (200 answers), at either entry point.
    pub fn tokens_issued(&self) -> u64 {
        self.shared.counters.tokens_issued.load(Ordering::SeqCst)
    }

    /// Resets all request counters to zero.
    pub fn reset_counters(&self) {
        self.shared.counters.token_requests.store(0, Ordering::SeqCst);
        self.shared.counters.tokens_issued.store(0, Ordering::SeqCst);
        lock(&self.shared.counters.per_client).clear();
    }

    /// The public keys as served at [`CognitoStandin::jwks_url`].
    pub fn jwks(&self) -> JwkSet {
        tb_shared::sync::read(&self.shared.keys).jwks()
    }

    /// The `kid` that signs new tokens.
    pub fn current_kid(&self) -> String {
        tb_shared::sync::read(&self.shared.keys).current_kid().to_owned()
    }

    /// Generates a new signing key and signs new tokens with it; old keys stay in the JWKS so tokens already issued
    /// still verify (lets a resource server's "unknown kid → refetch JWKS" path be tested). Returns the new `kid`.
    pub async fn rotate_signing_key(&self) -> std::io::Result<String> {
        let key = keys::SigningKey::generate().await?;
        let kid = key.kid().to_owned();
        tb_shared::sync::write(&self.shared.keys).push(key);
        Ok(kid)
    }

    /// Verifies an access token against this stand-in's keys and issuer (signature, RS256, `kid`, `iss`, `exp`,
    /// `token_use` = access) and returns its claims.
    pub fn verify_access_token(&self, token: &str) -> Result<AccessTokenClaims, VerifyError> {
        verify_access_token_with_jwks(&self.jwks(), &self.shared.issuer, token)
    }

    /// Stops accepting, lets in-flight requests finish for a few seconds, then stops the server.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown_tx.take() {
            let _ = tx.send(());
        }
        if let Some(mut task) = self.task.take() {
            if tokio::time::timeout(SHUTDOWN_GRACE, &mut task).await.is_err() {
                task.abort();
            }
        }
    }
}

impl Drop for CognitoStandin {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// A random secret in the style of Cognito's app-client secrets: 51 characters from `[a-z0-9]`.
pub fn random_secret() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..51).map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())])).collect()
}
