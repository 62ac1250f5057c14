//! The sample resource server's certificate-binding check end to end: both of its listeners over real TLS, driven by
//! reqwest with client identities issued by the local stack's CA (RFC 8705 §3).
//!
//! The tokens are signed here with a key whose JWKS a loopback server publishes, in the shape of the access tokens
//! Cognito issues (with the caller claims and, for a bound caller, `cnf.x5t#S256`), so every binding case can be
//! built without depending on who issues bound tokens. The last test checks that the local stack itself runs the
//! mTLS listener and reports its URL.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use brokerctl::devstack::resource::{self, ResourceListeners, ResourceServer};
use brokerctl::devstack::{listener, DevState};
use serde_json::{json, Value};
use tb_devkit::jwt::{JwksServer, PartnerKey};
use tb_devkit::pki::{IssuedCert, TestCa};

#[allow(unused_macros)]
mod e2e_common;

const ISSUER: &str = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_resourcetest";
const APP_CLIENT: &str = "resource-test-app-client";
const READ: &str = "customer-api/read";

/// A resource server on both listeners, trusting `key` for `ISSUER`, with the PKI of a fresh state directory.
struct Rig {
    listeners: ResourceListeners,
    key: PartnerKey,
    state: DevState,
    ca: TestCa,
    jwks_task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Drop for Rig {
    fn drop(&mut self) {
        for t in &self.listeners.tasks {
            t.abort();
        }
        self.jwks_task.abort();
    }
}

impl Rig {
    async fn start() -> Rig {
        let dir = tempfile::Builder::new().prefix("brokerctl-resource-mtls-").tempdir().unwrap();
        let state = DevState::open(dir.path()).unwrap();
        let ca_key = std::fs::read_to_string(state.paths.ca_key()).unwrap();
        let ca = TestCa::from_pem(&state.ca_cert_pem, &ca_key).unwrap();
        let key = PartnerKey::rsa("resource-test-1").unwrap();
        let (jwks, jwks_task) = JwksServer::start(key.jwks()).await.unwrap();
        let rs = Arc::new(ResourceServer::new(jwks.url.clone(), ISSUER.to_owned()));
        let plain_tls = listener::server_config(&state.server_cert_pem, &state.server_key_pem, None).unwrap();
        let mtls_tls =
            listener::optional_client_cert_config(&state.server_cert_pem, &state.server_key_pem, &state.ca_cert_pem)
                .unwrap();
        let any = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let listeners = resource::serve(rs, (any, plain_tls), (any, mtls_tls)).await.unwrap();
        Rig { listeners, key, state, ca, jwks_task, _dir: dir }
    }

    fn plain(&self) -> String {
        format!("https://{}", self.listeners.plain_addr)
    }

    fn mtls(&self) -> String {
        format!("https://{}", self.listeners.mtls_addr)
    }

    fn client_cert(&self, cn: &str) -> IssuedCert {
        self.ca.issue_client().cn(cn).build().unwrap()
    }

    /// An HTTPS client trusting the stack's CA, presenting `identity` when given.
    fn client(&self, identity: Option<&IssuedCert>) -> reqwest::Client {
        let mut b = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(self.state.ca_cert_pem.as_bytes()).unwrap())
            .timeout(Duration::from_secs(10));
        if let Some(cert) = identity {
            b = b.identity(reqwest::Identity::from_pem(format!("{}{}", cert.pem, cert.key_pem).as_bytes()).unwrap());
        }
        b.build().unwrap()
    }

    /// An access token in Cognito's shape with `scope`, bound to `cnf` when given (any JSON: tests also send
    /// malformed confirmations).
    fn token(&self, scope: &str, cnf: Option<Value>) -> String {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        let mut claims = json!({
            "sub": APP_CLIENT, "token_use": "access", "scope": scope, "auth_time": now, "iss": ISSUER,
            "exp": now + 300, "iat": now, "version": 2, "jti": "9f1c1a52-4b07-4c55-8d0e-5d2b1b7f7a11",
            "client_id": APP_CLIENT,
            "tb:callerId": "order-processing", "tb:authMethod": "mtls", "tb:policyVersion": "test",
            "tb:credentialFingerprint": "not-checked-by-the-resource-server",
        });
        if let Some(cnf) = cnf {
            claims["cnf"] = cnf;
        }
        self.key
            .sign(&claims, |h| {
                h.remove("typ");
            })
            .unwrap()
    }

    fn bound_token(&self, scope: &str, cert: &IssuedCert) -> String {
        self.token(scope, Some(json!({ "x5t#S256": tb_resource::certificate_thumbprint(&cert.der) })))
    }
}

/// The answer's status, its `WWW-Authenticate` header and its JSON body.
async fn get(c: &reqwest::Client, url: &str, token: &str) -> (u16, String, Value) {
    call(c, reqwest::Method::GET, &format!("{url}/customers"), token).await
}

async fn call(c: &reqwest::Client, method: reqwest::Method, url: &str, token: &str) -> (u16, String, Value) {
    let r = c.request(method, url).bearer_auth(token).send().await.expect("the listener answers");
    let status = r.status().as_u16();
    let www = r.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    (status, www, r.json().await.unwrap_or(Value::Null))
}

/// A 401 `invalid_token` whose body and header carry `error`'s description.
fn assert_refused(answer: &(u16, String, Value), error: tb_resource::BindingError, what: &str) {
    let (status, www, body) = answer;
    assert_eq!(*status, 401, "{what}: {body}");
    assert_eq!(body["error"], "invalid_token", "{what}");
    assert_eq!(body["error_description"], error.error_description(), "{what}");
    assert!(www.starts_with("Bearer realm=\"customer-api\", error=\"invalid_token\""), "{what}: {www}");
    assert!(www.contains(&format!("error_description=\"{}\"", error.error_description())), "{what}: {www}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bound_token_is_served_only_with_its_certificate_on_the_mtls_listener() {
    use tb_resource::BindingError::{Mismatch, NoCertificate};
    let rig = Rig::start().await;
    let (own, other) = (rig.client_cert("bound-caller"), rig.client_cert("other-caller"));
    let token = rig.bound_token(READ, &own);

    let (status, _, body) = get(&rig.client(Some(&own)), &rig.mtls(), &token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body[0]["id"], "123");

    let answer = get(&rig.client(Some(&other)), &rig.mtls(), &token).await;
    assert_refused(&answer, Mismatch, "another certificate of the same CA");
    let answer = get(&rig.client(None), &rig.mtls(), &token).await;
    assert_refused(&answer, NoCertificate, "no certificate");
    // The plain listener asks for no certificate, so even a client holding the right one presents none.
    let answer = get(&rig.client(Some(&own)), &rig.plain(), &token).await;
    assert_refused(&answer, NoCertificate, "the plain listener");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unbound_token_is_served_on_both_listeners_and_its_scopes_still_count() {
    let rig = Rig::start().await;
    let cert = rig.client_cert("unbound-caller");
    let token = rig.token(READ, None);
    let clients = [
        ("mTLS with a certificate", rig.client(Some(&cert)), rig.mtls()),
        ("mTLS without a certificate", rig.client(None), rig.mtls()),
        ("plain", rig.client(None), rig.plain()),
    ];
    for (what, c, url) in &clients {
        let (status, _, body) = get(c, url, &token).await;
        assert_eq!(status, 200, "{what}: {body}");
        let (status, www, body) = call(c, reqwest::Method::DELETE, &format!("{url}/customers/123"), &token).await;
        assert_eq!((status, body["error"].as_str()), (403, Some("insufficient_scope")), "{what}: {body}");
        assert!(www.contains("scope=\"customer-api/admin\""), "{what}: {www}");
    }
    // Without a valid token there is nothing to bind: the JWT checks still answer first.
    let (status, _, body) = get(&rig.client(Some(&cert)), &rig.mtls(), "not-a-token").await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_token")), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bound_token_needs_its_certificate_before_its_scopes_count() {
    let rig = Rig::start().await;
    let (own, other) = (rig.client_cert("bound-caller"), rig.client_cert("other-caller"));
    let token = rig.bound_token(READ, &own);
    let delete = format!("{}/customers/123", rig.mtls());
    // With its certificate the token is valid, and read-only.
    let (status, _, body) = call(&rig.client(Some(&own)), reqwest::Method::DELETE, &delete, &token).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("insufficient_scope")), "{body}");
    // With another, it is no valid token here at all (RFC 8705 §3: 401 invalid_token), whatever it would allow.
    let answer = call(&rig.client(Some(&other)), reqwest::Method::DELETE, &delete, &token).await;
    assert_refused(&answer, tb_resource::BindingError::Mismatch, "DELETE with another certificate");
    let admin = rig.bound_token("customer-api/admin", &own);
    let (status, _, body) = call(&rig.client(Some(&own)), reqwest::Method::DELETE, &delete, &admin).await;
    assert_eq!((status, body["deleted"].as_str()), (200, Some("123")), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirmation_the_server_cannot_check_is_refused_even_with_a_certificate() {
    let rig = Rig::start().await;
    let cert = rig.client_cert("caller");
    let thumbprint = tb_resource::certificate_thumbprint(&cert.der);
    for cnf in [
        json!({ "jkt": thumbprint }),
        json!({ "x5t#S256": thumbprint, "jkt": thumbprint }),
        json!({ "x5t#S256": format!("{thumbprint}=") }),
        json!(thumbprint),
    ] {
        let token = rig.token(READ, Some(cnf.clone()));
        let answer = get(&rig.client(Some(&cert)), &rig.mtls(), &token).await;
        assert_refused(&answer, tb_resource::BindingError::Malformed, &cnf.to_string());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_of_another_ca_fails_the_mtls_handshake() {
    let rig = Rig::start().await;
    let foreign = TestCa::root("Some Other Root CA").unwrap().issue_client().cn("caller").build().unwrap();
    let token = rig.bound_token(READ, &foreign);
    let r = rig.client(Some(&foreign)).get(format!("{}/customers", rig.mtls())).bearer_auth(&token).send().await;
    assert!(r.is_err(), "a certificate the stack's CA did not issue got an HTTP answer: {r:?}");
}

/// The local stack runs the mTLS listener beside the plain one, reports it, and serves a token the stack issued to
/// the client that obtained it, with that client's certificate (whether or not its caller's tokens are bound).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_stack_serves_and_reports_its_mtls_resource_listener() {
    let s = e2e_common::start(e2e_common::Mode::Embedded, "resource-mtls", |_| {}).await;
    assert_ne!(s.resource_mtls_addr, s.resource_addr);
    let printed = s.curl_commands();
    assert!(printed.contains(&s.resource_mtls_url()), "{printed}");
    let reporting = e2e_common::client(&s, Some("reporting"));
    let (status, body) = e2e_common::token_request(&reporting, &s.mtls_url(), None, None).await;
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().unwrap();
    let (status, _, body) = get(&reporting, &s.resource_mtls_url(), token).await;
    assert_eq!(status, 200, "{body}");
    let foreign = TestCa::root("Some Other Root CA").unwrap().issue_client().cn("reporting").build().unwrap();
    let r = e2e_common::client_with(&s, &foreign).get(format!("{}/customers", s.resource_mtls_url())).send().await;
    assert!(r.is_err(), "a certificate the stack's CA did not issue got an HTTP answer: {r:?}");
}
