use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::sources::{Fetched, ObjectSource};
use rustls_pki_types::{CertificateDer, UnixTime};
use sha2::{Digest, Sha256};
use webpki::{
    CertRevocationList, ExpirationPolicy, KeyUsage, RevocationCheckDepth, RevocationOptionsBuilder, UnknownStatusPolicy,
};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::x509::X509Name;

use super::material::{asn1_to_system_time, parse_crls, parse_truststore, CrlSet, Truststore};
use super::pem::{single_certificate_der, PemProblem};
use super::{CertError, MtlsConfig, MtlsError};

/// What a verified client certificate says, parsed from its DER (never from the event's DN strings). Holds
/// hashes and names only, no certificate bytes, so it can be cached and logged.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifiedCert {
    /// SHA-256 of the DER certificate (what a `cert_sha256` pin holds; also the decision-cache key).
    pub cert_sha256: [u8; 32],
    /// SHA-256 of the DER SubjectPublicKeyInfo (what a `spki_sha256` pin holds; survives re-issuance).
    pub spki_sha256: [u8; 32],
    /// URI SANs in certificate order.
    pub san_uris: Vec<String>,
    /// DNS SANs in certificate order, as written in the certificate.
    pub san_dns: Vec<String>,
    /// The subject's CN when the subject has exactly one CN attribute.
    pub subject_cn: Option<String>,
    /// The issuer's CN when the issuer name has exactly one CN attribute. The chain was verified, so this names a
    /// CA of the truststore.
    pub issuer_cn: Option<String>,
    /// End of the certificate's validity: a cached decision must not outlive it.
    pub not_after: SystemTime,
}

impl std::fmt::Debug for VerifiedCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedCert")
            .field("cert_sha256", &hex::encode(self.cert_sha256))
            .field("spki_sha256", &hex::encode(self.spki_sha256))
            .field("san_uris", &self.san_uris)
            .field("san_dns", &self.san_dns)
            .field("subject_cn", &self.subject_cn)
            .field("issuer_cn", &self.issuer_cn)
            .field("not_after", &self.not_after)
            .finish()
    }
}

/// One consistent set of trust material. Replaced as a whole, never mutated, so a request sees either the old or
/// the new set and never a mix.
#[derive(Default)]
struct Material {
    truststore: Option<Arc<Truststore>>,
    truststore_etag: Option<String>,
    crls: Option<Arc<CrlSet>>,
    crl_etag: Option<String>,
    /// Whether the passing of the earliest CRL nextUpdate was already reported as a change (once per material).
    stale_signalled: AtomicBool,
}

const NEVER: u64 = u64::MAX;

/// Verifies client certificates against a truststore and CRLs that it keeps fresh from their sources.
/// `Send + Sync`; share it in an `Arc` for the life of the process.
pub struct CertVerifier {
    truststore_src: Arc<dyn ObjectSource>,
    crl_src: Option<Arc<dyn ObjectSource>>,
    cfg: MtlsConfig,
    material: RwLock<Arc<Material>>,
    generation: AtomicU64,
    /// Serialises refreshes; `refresh_if_due` skips instead of queueing behind a running one.
    refresh_lock: tokio::sync::Mutex<()>,
    started: Instant,
    /// Milliseconds after `started` of the last refresh attempt, or `NEVER`.
    last_check_ms: AtomicU64,
}

impl std::fmt::Debug for CertVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = self.snapshot();
        f.debug_struct("CertVerifier")
            .field("truststore", &self.truststore_src.describe())
            .field("crls", &self.crl_src.as_ref().map(|s| s.describe()))
            .field("anchors", &m.truststore.as_ref().map_or(0, |t| t.anchors.len()))
            .field("intermediates", &m.truststore.as_ref().map_or(0, |t| t.intermediates.len()))
            .field("crl_count", &m.crls.as_ref().map_or(0, |c| c.crls.len()))
            .field("generation", &self.generation())
            .field("cfg", &self.cfg)
            .finish()
    }
}

impl CertVerifier {
    /// A verifier with no material yet; call [`CertVerifier::refresh`] at cold start. Without a CRL source,
    /// revocation is not checked (warned about here, once).
    pub fn new(truststore: Arc<dyn ObjectSource>, crls: Option<Arc<dyn ObjectSource>>, cfg: MtlsConfig) -> Self {
        match &crls {
            Some(src) => tracing::info!(
                truststore = %truststore.describe(),
                crls = %src.describe(),
                require_crl = cfg.require_crl,
                "mTLS verifier configured"
            ),
            None => tracing::warn!(
                truststore = %truststore.describe(),
                "mTLS verifier configured without a CRL source: certificate revocation is not checked"
            ),
        }
        CertVerifier {
            truststore_src: truststore,
            crl_src: crls,
            cfg,
            material: RwLock::new(Arc::new(Material::default())),
            generation: AtomicU64::new(0),
            refresh_lock: tokio::sync::Mutex::new(()),
            started: Instant::now(),
            last_check_ms: AtomicU64::new(NEVER),
        }
    }

    fn snapshot(&self) -> Arc<Material> {
        Arc::clone(&tb_shared::sync::read(&self.material))
    }

    /// Monotonic counter bumped on every change of trust material (and once when a CRL goes stale), so a decision
    /// cache can tell that its entries were made under older material.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Whether a truststore is loaded; until then every certificate is refused with [`CertError::NoTrustMaterial`].
    pub fn is_ready(&self) -> bool {
        self.snapshot().truststore.is_some()
    }

    /// The earliest nextUpdate of the loaded CRLs: a cached Allow must not outlive it, because from then on the
    /// verifier refuses certificates of that issuer until a fresh CRL arrives.
    pub fn crls_fresh_until(&self) -> Option<SystemTime> {
        self.snapshot().crls.as_ref().and_then(|c| c.fresh_until)
    }

    /// Loads the truststore and CRLs now (cold start, or a forced refresh). Returns whether material changed.
    /// `Err` when either object could not be fetched or parsed; whatever did load is installed, the rest keeps its
    /// last good version, and `verify_pem` fails closed where material is missing. A cold start should log the
    /// error and carry on: the next [`CertVerifier::refresh_if_due`] retries.
    pub async fn refresh(&self) -> Result<bool, MtlsError> {
        let _guard = self.refresh_lock.lock().await;
        let (changed, err) = self.refresh_locked().await;
        match err {
            Some(e) => Err(e),
            None => Ok(changed),
        }
    }

    /// Refreshes when `refresh_interval` has passed since the last attempt (a conditional fetch by ETag, so an
    /// unchanged object costs no body). Returns `true` when the material changed, or a CRL just went stale: the
    /// caller then clears its decision cache. A failed refresh keeps the last good material (logged as a warning)
    /// and returns `Ok`; stale CRLs still deny. `Err` only when no truststore has ever loaded. `now` is the time
    /// CRL freshness is judged at (the app's clock).
    pub async fn refresh_if_due(&self, now: SystemTime) -> Result<bool, MtlsError> {
        if !self.due() {
            return Ok(false);
        }
        let Ok(_guard) = self.refresh_lock.try_lock() else {
            return Ok(false); // another task is refreshing right now
        };
        if !self.due() {
            return Ok(false);
        }
        let (changed, err) = self.refresh_locked().await;
        let went_stale = self.signal_stale(now);
        match err {
            Some(e) if !self.is_ready() => Err(e),
            _ => Ok(changed || went_stale),
        }
    }

    fn due(&self) -> bool {
        let last = self.last_check_ms.load(Ordering::Acquire);
        if last == NEVER {
            return true;
        }
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        let interval = u64::try_from(self.cfg.refresh_interval.as_millis()).unwrap_or(u64::MAX);
        now.saturating_sub(last) >= interval
    }

    fn signal_stale(&self, now: SystemTime) -> bool {
        let m = self.snapshot();
        let stale = m.crls.as_ref().and_then(|c| c.fresh_until).is_some_and(|t| now >= t);
        if stale && !m.stale_signalled.swap(true, Ordering::AcqRel) {
            self.generation.fetch_add(1, Ordering::AcqRel);
            tracing::warn!("a CRL is past its nextUpdate: certificates of its issuer are refused until a fresh CRL");
            return true;
        }
        false
    }

    async fn refresh_locked(&self) -> (bool, Option<MtlsError>) {
        let now_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        self.last_check_ms.store(now_ms, Ordering::Release);
        let current = self.snapshot();
        let mut first_err = None;

        let mut new_ts = None;
        match self.truststore_src.fetch(current.truststore_etag.as_deref()).await {
            Ok(Fetched::Unchanged) => {}
            Ok(Fetched::Changed { body, etag }) => match parse_truststore(&body) {
                Ok(ts) => new_ts = Some((Arc::new(ts), etag)),
                Err(reason) => {
                    tracing::warn!(%reason, etag = %etag, "refused new truststore; keeping the last good one");
                    first_err = Some(MtlsError::TruststoreInvalid(reason));
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "truststore fetch failed; keeping the last good one");
                first_err = Some(MtlsError::TruststoreUnavailable(e));
            }
        }

        let mut new_crls = None;
        if let Some(src) = &self.crl_src {
            match src.fetch(current.crl_etag.as_deref()).await {
                Ok(Fetched::Unchanged) => {}
                Ok(Fetched::Changed { body, etag }) => match parse_crls(&body) {
                    Ok(set) => new_crls = Some((Arc::new(set), etag)),
                    Err(reason) => {
                        tracing::warn!(%reason, etag = %etag, "refused new CRL bundle; keeping the last good one");
                        first_err.get_or_insert(MtlsError::CrlInvalid(reason));
                    }
                },
                Err(e) => {
                    tracing::warn!(error = %e, "CRL fetch failed; keeping the last good CRLs");
                    first_err.get_or_insert(MtlsError::CrlUnavailable(e));
                }
            }
        }

        if new_ts.is_none() && new_crls.is_none() {
            return (false, first_err);
        }
        let (truststore, truststore_etag) = match new_ts {
            Some((ts, etag)) => (Some(ts), Some(etag)),
            None => (current.truststore.clone(), current.truststore_etag.clone()),
        };
        let (crls, crl_etag) = match new_crls {
            Some((c, etag)) => (Some(c), Some(etag)),
            None => (current.crls.clone(), current.crl_etag.clone()),
        };
        let next = Material { truststore, truststore_etag, crls, crl_etag, stale_signalled: AtomicBool::new(false) };
        tracing::info!(
            anchors = next.truststore.as_ref().map_or(0, |t| t.anchors.len()),
            intermediates = next.truststore.as_ref().map_or(0, |t| t.intermediates.len()),
            cas = ?next.truststore.as_ref().map(|t| t.names.clone()).unwrap_or_default(),
            crls = next.crls.as_ref().map_or(0, |c| c.crls.len()),
            truststore_etag = next.truststore_etag.as_deref().unwrap_or(""),
            crl_etag = next.crl_etag.as_deref().unwrap_or(""),
            "mTLS trust material loaded"
        );
        *tb_shared::sync::write(&self.material) = Arc::new(next);
        self.generation.fetch_add(1, Ordering::AcqRel);
        (true, first_err)
    }

    /// Fully verifies `clientCertPem` as API Gateway hands it in `requestContext.identity.clientCert`: strict PEM
    /// decoding, X.509 parsing, duplicate-extension, CA-flag and clientAuth checks, chain validation to the
    /// truststore at `now`, and revocation. Never panics; the error names no certificate content.
    pub fn verify_pem(&self, pem: &str, now: SystemTime) -> Result<VerifiedCert, CertError> {
        let der = single_certificate_der(pem).map_err(|p| match p {
            PemProblem::TooLarge => CertError::TooLarge,
            PemProblem::TrailingBytes => CertError::TrailingData,
            PemProblem::BadDerFraming => CertError::MalformedDer,
            other => CertError::MalformedPem(other.describe()),
        })?;
        let (rest, cert) = X509Certificate::from_der(&der).map_err(|_| CertError::MalformedDer)?;
        if !rest.is_empty() {
            return Err(CertError::TrailingData);
        }
        let exts = cert.extensions();
        for (i, a) in exts.iter().enumerate() {
            if exts.iter().skip(i + 1).any(|b| b.oid == a.oid) {
                return Err(CertError::DuplicateExtension);
            }
        }
        match cert.basic_constraints() {
            Ok(Some(bc)) if bc.value.ca => return Err(CertError::CaAsLeaf),
            Ok(_) => {}
            Err(_) => return Err(CertError::MalformedDer),
        }
        // webpki only requires clientAuth *if* an EKU extension is present (and checks intermediates the same
        // way); a client certificate must carry it explicitly.
        match cert.extended_key_usage() {
            Ok(Some(eku)) if eku.value.client_auth => {}
            Ok(_) => return Err(CertError::NoClientAuthEku),
            Err(_) => return Err(CertError::MalformedDer),
        }

        let material = self.snapshot();
        let ts = material.truststore.as_ref().ok_or(CertError::NoTrustMaterial)?;
        let since_epoch = now.duration_since(UNIX_EPOCH).map_err(|_| CertError::NotYetValid)?;
        let time = UnixTime::since_unix_epoch(since_epoch);

        let crl_refs: Vec<&CertRevocationList<'static>> =
            material.crls.as_ref().map(|c| c.crls.iter().collect()).unwrap_or_default();
        let revocation = match &self.crl_src {
            None => None,
            Some(_) => match RevocationOptionsBuilder::new(&crl_refs) {
                Ok(b) => Some(
                    b.with_depth(RevocationCheckDepth::Chain)
                        .with_status_policy(if self.cfg.require_crl {
                            UnknownStatusPolicy::Deny
                        } else {
                            UnknownStatusPolicy::Allow
                        })
                        .with_expiration_policy(ExpirationPolicy::Enforce)
                        .build(),
                ),
                // no CRL loaded at all
                Err(_) if self.cfg.require_crl => return Err(CertError::RevocationUnknown),
                Err(_) => None,
            },
        };

        let cert_der = CertificateDer::from(der.as_slice());
        let ee = webpki::EndEntityCert::try_from(&cert_der).map_err(map_webpki)?;
        ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &ts.anchors,
            &ts.intermediates,
            time,
            KeyUsage::client_auth(),
            revocation,
            None,
        )
        .map_err(map_webpki)?;

        let mut san_uris = Vec::new();
        let mut san_dns = Vec::new();
        match cert.subject_alternative_name() {
            Ok(Some(san)) => {
                for name in &san.value.general_names {
                    match name {
                        GeneralName::URI(u) => san_uris.push((*u).to_owned()),
                        GeneralName::DNSName(d) => san_dns.push((*d).to_owned()),
                        _ => {}
                    }
                }
            }
            Ok(None) => {}
            Err(_) => return Err(CertError::MalformedDer),
        }
        Ok(VerifiedCert {
            cert_sha256: Sha256::digest(&der).into(),
            spki_sha256: Sha256::digest(cert.public_key().raw).into(),
            san_uris,
            san_dns,
            subject_cn: single_cn(cert.subject()),
            issuer_cn: single_cn(cert.issuer()),
            not_after: asn1_to_system_time(cert.validity().not_after),
        })
    }
}

/// The CN of a name when it has exactly one; two CNs make "the" CN ambiguous, so none is reported.
fn single_cn(name: &X509Name<'_>) -> Option<String> {
    let mut it = name.iter_common_name();
    let first = it.next()?;
    if it.next().is_some() {
        return None;
    }
    first.as_str().ok().map(str::to_owned)
}

#[allow(deprecated)]
fn map_webpki(e: webpki::Error) -> CertError {
    use webpki::Error as E;
    match e {
        E::CertExpired { .. } => CertError::Expired,
        E::CertNotValidYet { .. } => CertError::NotYetValid,
        E::CaUsedAsEndEntity => CertError::CaAsLeaf,
        E::RequiredEkuNotFound | E::RequiredEkuNotFoundContext(_) | E::EmptyEkuExtension => CertError::NoClientAuthEku,
        E::CertRevoked => CertError::Revoked,
        E::CrlExpired { .. } => CertError::StaleCrl,
        E::UnknownRevocationStatus => CertError::RevocationUnknown,
        E::InvalidCrlSignatureForPublicKey
        | E::UnsupportedCrlSignatureAlgorithm
        | E::UnsupportedCrlSignatureAlgorithmContext(_)
        | E::UnsupportedCrlSignatureAlgorithmForPublicKey
        | E::UnsupportedCrlSignatureAlgorithmForPublicKeyContext(_)
        | E::IssuerNotCrlSigner => CertError::BadCrlSignature,
        E::UnknownIssuer
        | E::InvalidSignatureForPublicKey
        | E::CertDistrusted
        | E::EndEntityUsedAsCa
        | E::PathLenConstraintViolated
        | E::NameConstraintViolation
        | E::MaximumPathDepthExceeded
        | E::MaximumPathBuildCallsExceeded
        | E::MaximumSignatureChecksExceeded
        | E::SignatureAlgorithmMismatch
        | E::UnsupportedSignatureAlgorithm
        | E::UnsupportedSignatureAlgorithmContext(_)
        | E::UnsupportedSignatureAlgorithmForPublicKey
        | E::UnsupportedSignatureAlgorithmForPublicKeyContext(_) => CertError::UntrustedIssuer,
        E::BadDer
        | E::BadDerTime
        | E::TrailingData(_)
        | E::ExtensionValueInvalid
        | E::MalformedExtensions
        | E::InvalidCertValidity
        | E::InvalidSerialNumber
        | E::UnsupportedCertVersion
        | E::UnsupportedCriticalExtension => CertError::MalformedDer,
        other => CertError::Invalid(format!("{other:?}")),
    }
}
