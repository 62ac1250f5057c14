//! A third-party OAuth 2.0 client library (the `oauth2` crate, not written by this project) obtains a token from the
//! local stack with its client-credentials flow over mutual TLS, the way an RFC 8705 client would: the certificate
//! authenticates, the body carries `client_id` (which the broker requires to equal the caller) and no secret.
//!
//! The crate builds the request and parses and validates the response; the transport it is handed is a reqwest
//! client holding the caller's certificate, because the crate's own reqwest integration has no way to attach one.

use std::time::Duration;

use brokerctl::devstack::{DevOptions, DevStack};
use oauth2::basic::BasicClient;
use oauth2::{AuthType, ClientId, Scope, TokenResponse, TokenUrl};

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct TransportError(String);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_oauth2_crate_gets_a_token_over_mtls() {
    let dir = tempfile::Builder::new().prefix("brokerctl-oauth2-").tempdir().unwrap();
    let stack =
        DevStack::start(DevOptions { state_dir: dir.path().to_path_buf(), ..DevOptions::default() }).await.unwrap();
    let p = &stack.state().paths;
    let mut identity = std::fs::read(p.client_cert("order-processing")).unwrap();
    identity.extend(std::fs::read(p.client_key("order-processing")).unwrap());
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(p.ca_cert()).unwrap()).unwrap())
        .identity(reqwest::Identity::from_pem(&identity).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let transport = |req: oauth2::HttpRequest| {
        let http = http.clone();
        async move {
            let (parts, body) = req.into_parts();
            let resp = http
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send()
                .await
                .map_err(|e| TransportError(e.to_string()))?;
            let mut out = http::Response::builder().status(resp.status());
            for (k, v) in resp.headers() {
                out = out.header(k, v);
            }
            let bytes = resp.bytes().await.map_err(|e| TransportError(e.to_string()))?;
            out.body(bytes.to_vec()).map_err(|e| TransportError(e.to_string()))
        }
    };

    let client = BasicClient::new(ClientId::new("order-processing".into()))
        .set_auth_type(AuthType::RequestBody)
        .set_token_uri(TokenUrl::new(format!("{}/oauth2/token", stack.mtls_url())).unwrap());
    let token = client
        .exchange_client_credentials()
        .add_scope(Scope::new("customer-api/read".into()))
        .add_scope(Scope::new("customer-api/write".into()))
        .request_async(&transport)
        .await
        .expect("the oauth2 crate obtains a token");
    let mut granted: Vec<String> = token.scopes().unwrap().iter().map(|s| s.to_string()).collect();
    granted.sort();
    assert_eq!(granted, ["customer-api/read", "customer-api/write"]);
    assert!(token.expires_in().is_some_and(|d| d <= Duration::from_secs(3600) && d > Duration::ZERO));
    let claims = stack.standin().unwrap().verify_access_token(token.access_token().secret()).unwrap();
    assert_eq!(claims.scopes().len(), 2);

    // The same library, claiming to be another caller with this certificate, is refused (RFC 6749 invalid_client).
    let impostor = BasicClient::new(ClientId::new("reporting".into()))
        .set_auth_type(AuthType::RequestBody)
        .set_token_uri(TokenUrl::new(format!("{}/oauth2/token", stack.mtls_url())).unwrap());
    let err = impostor.exchange_client_credentials().request_async(&transport).await.unwrap_err();
    match err {
        oauth2::RequestTokenError::ServerResponse(r) => {
            assert_eq!(r.error(), &oauth2::basic::BasicErrorResponseType::InvalidClient)
        }
        other => panic!("expected an invalid_client error response, got {other:?}"),
    }
}
