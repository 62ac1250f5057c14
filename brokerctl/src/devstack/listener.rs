//! HTTPS listeners on loopback: rustls in front of hyper (HTTP/1.1, keep-alive), with the client certificate the
//! handshake verified handed to the request handler, the way API Gateway's custom domain terminates mutual TLS and
//! passes `clientCert` on.
//!
//! The mTLS listener checks a client certificate the way the custom domain does, no more: the chain must lead to a
//! self-signed CA of the truststore (the other truststore CAs serve as intermediates), with signatures of algorithms
//! rustls considers secure, and a self-signed or unknown-issuer leaf is refused at the handshake. The leaf's validity
//! period and extended key usage are not the handshake's business: API Gateway lets an expired leaf, or one without
//! the clientAuth purpose, through to the authorizer, which refuses it (401). See [`GatewayClientVerifier`].

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
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

/// TLS 1.2+ server config; with `client_roots` (the truststore), a client certificate that
/// [`GatewayClientVerifier`] accepts is required (the mTLS custom domain), without it none is asked for (the partner
/// domain).
pub fn server_config(
    cert_pem: &str,
    key_pem: &str,
    client_roots: Option<&str>,
) -> Result<Arc<rustls::ServerConfig>, String> {
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match client_roots {
        Some(truststore_pem) => {
            builder.with_client_cert_verifier(Arc::new(GatewayClientVerifier::new(truststore_pem)?))
        }
        None => builder.with_no_client_auth(),
    };
    finish(builder, cert_pem, key_pem)
}

/// TLS 1.2+ server config of the sample resource server's mTLS listener: a client certificate is asked for and, when
/// one is sent, must pass [`GatewayClientVerifier`] against `client_roots` (the local stack's CA), but a client may
/// send none. The handshake then proves possession of the certificate's key, and the application decides what a
/// request without a certificate gets: RFC 8705 §3 wants a 401 `invalid_token` for a bound token, not a failed
/// handshake, and an unbound token is still served.
pub fn optional_client_cert_config(
    cert_pem: &str,
    key_pem: &str,
    client_roots: &str,
) -> Result<Arc<rustls::ServerConfig>, String> {
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(Arc::new(GatewayClientVerifier::optional(client_roots)?));
    finish(builder, cert_pem, key_pem)
}

fn finish(
    builder: rustls::ConfigBuilder<rustls::ServerConfig, rustls::server::WantsServerCert>,
    cert_pem: &str,
    key_pem: &str,
) -> Result<Arc<rustls::ServerConfig>, String> {
    let mut cfg = builder.with_single_cert(certs(cert_pem)?, key(key_pem)?).map_err(|e| e.to_string())?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// The mTLS custom domain's check of a client certificate, on rustls's WebPKI verifier:
///
/// - only the truststore's self-signed CAs are trust anchors; its other CAs are offered as intermediates, so a leaf
///   of an intermediate whose root is not in the truststore is refused (a truststore holds whole chains, and the
///   authorizer builds the same anchors from it);
/// - the chain is checked at a moment inside the leaf's validity period, so an expired or not-yet-valid leaf passes
///   the handshake (API Gateway does not check it; the authorizer refuses it);
/// - a leaf whose extended key usage lacks clientAuth is checked again for the serverAuth purpose, which rustls's
///   verifier offers as its only alternative: a leaf naming serverAuth (a server certificate used as a client's)
///   passes, as at API Gateway, and the authorizer refuses it. A leaf whose extended key usage names neither purpose
///   is still refused at the handshake here, where API Gateway would pass it to the authorizer: rustls offers no
///   chain check that ignores the purpose, and such certificates are rare outside attacks the authorizer's tests
///   cover.
#[derive(Debug)]
pub struct GatewayClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    roots: Arc<RootCertStore>,
    truststore_intermediates: Vec<CertificateDer<'static>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl GatewayClientVerifier {
    /// A verifier for the CA certificates of `truststore_pem`; it needs at least one self-signed CA among them.
    /// A client certificate is required.
    pub fn new(truststore_pem: &str) -> Result<Self, String> {
        Self::with_roots(truststore_pem, true)
    }

    /// Like [`GatewayClientVerifier::new`], but a client that sends no certificate completes the handshake (the
    /// sample resource server's mTLS listener); one that sends a certificate is checked as by `new`.
    pub fn optional(truststore_pem: &str) -> Result<Self, String> {
        Self::with_roots(truststore_pem, false)
    }

    fn with_roots(truststore_pem: &str, mandatory: bool) -> Result<Self, String> {
        let mut roots = RootCertStore::empty();
        let mut truststore_intermediates = Vec::new();
        for c in certs(truststore_pem)? {
            let self_signed = x509_parser::parse_x509_certificate(&c)
                .map(|(_, x)| x.subject().as_raw() == x.issuer().as_raw())
                .map_err(|e| format!("truststore: {e}"))?;
            if self_signed {
                roots.add(c).map_err(|e| format!("truststore: {e}"))?;
            } else {
                truststore_intermediates.push(c);
            }
        }
        if roots.is_empty() {
            return Err("truststore: no self-signed root CA (an intermediate needs its root in the truststore)".into());
        }
        let roots = Arc::new(roots);
        let builder = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider());
        let builder = if mandatory { builder } else { builder.allow_unauthenticated() };
        let inner = builder.build().map_err(|e| format!("client verifier: {e}"))?;
        Ok(GatewayClientVerifier { inner, roots, truststore_intermediates, provider: provider() })
    }
}

/// `now`, or the nearest moment inside the leaf's validity period when `now` is outside it.
fn inside_validity(end_entity: &CertificateDer<'_>, now: UnixTime) -> UnixTime {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(end_entity) else { return now };
    let secs = |t: x509_parser::time::ASN1Time| u64::try_from(t.timestamp()).unwrap_or(0);
    let (from, to) = (secs(cert.validity().not_before), secs(cert.validity().not_after));
    let at = now.as_secs().clamp(from, to.max(from));
    UnixTime::since_unix_epoch(Duration::from_secs(at))
}

impl ClientCertVerifier for GatewayClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let mut chain: Vec<CertificateDer<'_>> = intermediates.to_vec();
        chain.extend(self.truststore_intermediates.iter().cloned());
        let at = inside_validity(end_entity, now);
        match self.inner.verify_client_cert(end_entity, &chain, at) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. },
            )) => {
                let leaf = ParsedCertificate::try_from(end_entity)?;
                let algs = self.provider.signature_verification_algorithms.all;
                rustls::client::verify_server_cert_signed_by_trust_anchor(&leaf, &self.roots, &chain, at, algs)?;
                Ok(ClientCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
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

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use tb_devkit::pki::{pem_bundle, self_signed_client, IssuedCert, TestCa};

    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    fn check(truststore: &str, leaf: &IssuedCert, sent: &[&TestCa]) -> Result<(), rustls::Error> {
        let v = GatewayClientVerifier::new(truststore).unwrap();
        let sent: Vec<CertificateDer<'_>> = sent.iter().map(|c| CertificateDer::from(c.cert_der().to_vec())).collect();
        let now = UnixTime::since_unix_epoch(SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap());
        v.verify_client_cert(&CertificateDer::from(leaf.der.clone()), &sent, now).map(|_| ())
    }

    #[test]
    fn the_handshake_leaves_validity_and_purpose_to_the_authorizer() {
        let ca = TestCa::root("Dev Root CA").unwrap();
        let now = SystemTime::now();
        let valid = ca.issue_client().cn("ok").build().unwrap();
        let expired = ca.issue_client().cn("old").validity(now - 30 * DAY, now - DAY).build().unwrap();
        let early = ca.issue_client().cn("early").validity(now + DAY, now + 30 * DAY).build().unwrap();
        let server_purpose = ca.issue_client().cn("server").client_auth(false).build().unwrap();
        let both = ca.issue_client().cn("both").client_auth(false).validity(now - 30 * DAY, now - DAY).build().unwrap();
        for (what, leaf) in
            [("valid", &valid), ("expired", &expired), ("not yet valid", &early), ("serverAuth", &server_purpose)]
        {
            assert_eq!(check(ca.cert_pem(), leaf, &[]), Ok(()), "{what}");
        }
        assert_eq!(check(ca.cert_pem(), &both, &[]), Ok(()), "expired serverAuth");
    }

    #[test]
    fn unknown_issuers_and_self_signed_leaves_are_refused_at_the_handshake() {
        let ca = TestCa::root("Dev Root CA").unwrap();
        let lookalike = ca.lookalike().unwrap();
        let foreign = lookalike.issue_client().cn("ok").build().unwrap();
        assert!(check(ca.cert_pem(), &foreign, &[]).is_err(), "a CA with the same name but another key");
        let own = self_signed_client().cn("ok").build().unwrap();
        assert!(check(ca.cert_pem(), &own, &[]).is_err(), "self-signed");
        let expired_foreign =
            lookalike.issue_client().validity(SystemTime::now() - 30 * DAY, SystemTime::now() - DAY).build().unwrap();
        assert!(check(ca.cert_pem(), &expired_foreign, &[]).is_err(), "expired and untrusted");
    }

    #[test]
    fn the_resource_servers_verifier_lets_clients_without_a_certificate_through_and_checks_the_others() {
        let ca = TestCa::root("Dev Root CA").unwrap();
        assert!(GatewayClientVerifier::new(ca.cert_pem()).unwrap().client_auth_mandatory());
        let optional = GatewayClientVerifier::optional(ca.cert_pem()).unwrap();
        assert!(!optional.client_auth_mandatory() && optional.offer_client_auth());
        let now = UnixTime::since_unix_epoch(SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap());
        let verify = |leaf: &IssuedCert| optional.verify_client_cert(&CertificateDer::from(leaf.der.clone()), &[], now);
        assert!(verify(&ca.issue_client().cn("ok").build().unwrap()).is_ok());
        assert!(verify(&ca.lookalike().unwrap().issue_client().cn("ok").build().unwrap()).is_err(), "another CA");
        assert!(verify(&self_signed_client().cn("ok").build().unwrap()).is_err(), "self-signed");
    }

    #[test]
    fn only_self_signed_truststore_cas_are_roots() {
        let root = TestCa::root("Dev Root CA").unwrap();
        let inter = root.intermediate("Dev Issuing CA").unwrap();
        let leaf = inter.issue_client().cn("ok").build().unwrap();
        // The whole chain in the truststore, or the root there and the intermediate sent by the client.
        assert_eq!(check(&inter.chain_bundle_pem(), &leaf, &[]), Ok(()));
        assert_eq!(check(root.cert_pem(), &leaf, &[&inter]), Ok(()));
        // The intermediate without its root anchors nothing: a truststore holds whole chains.
        let without_root = pem_bundle(&[inter.cert_pem(), TestCa::root("Other Root").unwrap().cert_pem()]);
        assert!(check(&without_root, &leaf, &[]).is_err());
        assert!(GatewayClientVerifier::new(inter.cert_pem()).is_err(), "a truststore without any root");
    }
}
