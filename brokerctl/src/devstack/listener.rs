//! HTTPS listeners on loopback: rustls in front of hyper (HTTP/1.1, keep-alive), with the client certificate the
//! handshake verified handed to the request handler, the way API Gateway's custom domain terminates mutual TLS and
//! passes `clientCert` on.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use super::gateway::{ConnInfo, Domain};

/// A request handler: request (body read in full) and connection facts in, response out.
pub type Handler = Arc<
    dyn Fn(http::Request<Bytes>, ConnInfo) -> Pin<Box<dyn Future<Output = http::Response<Full<Bytes>>> + Send>>
        + Send
        + Sync,
>;

/// Longest a client may take to finish the TLS handshake; a stalled handshake must not hold a task forever.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest body read; API Gateway's own limit is 10 MB, and the gateway answers 413 above it.
const MAX_BODY: usize = super::gateway::MAX_PAYLOAD + 1;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn certs(pem: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let mut out = Vec::new();
    for item in x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes()) {
        let p = item.map_err(|e| format!("PEM: {e}"))?;
        if p.label == "CERTIFICATE" {
            out.push(CertificateDer::from(p.contents));
        }
    }
    if out.is_empty() {
        return Err("no certificate".into());
    }
    Ok(out)
}

fn key(pem: &str) -> Result<PrivateKeyDer<'static>, String> {
    use rustls::pki_types::pem::PemObject;
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| format!("private key: {e}"))
}

/// TLS 1.2+ server config; with `client_roots`, a client certificate chaining to them is required (the mTLS
/// custom domain), without it none is asked for (the partner domain).
pub fn server_config(
    cert_pem: &str,
    key_pem: &str,
    client_roots: Option<&str>,
) -> Result<Arc<rustls::ServerConfig>, String> {
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match client_roots {
        Some(roots_pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in certs(roots_pem)? {
                roots.add(c).map_err(|e| format!("truststore: {e}"))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .map_err(|e| format!("client verifier: {e}"))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut cfg = builder.with_single_cert(certs(cert_pem)?, key(key_pem)?).map_err(|e| e.to_string())?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// Binds `addr` and serves `handler` over TLS until the returned task is aborted.
pub async fn serve(
    addr: SocketAddr,
    tls: Arc<rustls::ServerConfig>,
    domain: Domain,
    handler: Handler,
) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let acceptor = TlsAcceptor::from(tls);
    let task = tokio::spawn(async move {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let handler = handler.clone();
            tokio::spawn(async move {
                let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        // What API Gateway does too: a client without an acceptable certificate never gets HTTP.
                        tracing::debug!(%peer, error = %e, "TLS handshake refused");
                        return;
                    }
                    Err(_) => return,
                };
                let client_cert =
                    tls.get_ref().1.peer_certificates().and_then(|c| c.first()).map(|c| Arc::new(c.as_ref().to_vec()));
                let conn = ConnInfo { peer, domain, client_cert };
                let service = hyper::service::service_fn(move |req: http::Request<Incoming>| {
                    let handler = handler.clone();
                    let conn = conn.clone();
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = match Limited::new(body, MAX_BODY).collect().await {
                            Ok(b) => b.to_bytes(),
                            Err(_) => {
                                let mut r = http::Response::new(Full::new(Bytes::from_static(
                                    br#"{"error":"invalid_request","error_description":"the request body is too large"}"#,
                                )));
                                *r.status_mut() = http::StatusCode::PAYLOAD_TOO_LARGE;
                                return Ok::<_, std::convert::Infallible>(r);
                            }
                        };
                        Ok(handler(http::Request::from_parts(parts, body), conn).await)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    Ok((local, task))
}
