use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::sources::{Fetched, ObjectSource};
use rustls_pki_types::{CertificateDer, UnixTime};
use sha2::{Digest, Sha256};
use tb_shared::policy::{Identity, KeyFloor, Policy};
use tb_shared::telemetry::MetricsSink;
use webpki::KeyUsage;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::health::RefreshFailures;
use super::keys::KeyStrength;
use super::material::{asn1_to_system_time, crl_distribution_uris, parse_truststore, single_cn, CaInfo, Truststore};
use super::pem::{single_certificate_der, PemProblem};
use super::revocation::{self, parse_bundle, CrlBundle, RevocationIndex, Role, Status};
use super::{CertError, MtlsConfig, MtlsError};

/// Most extensions a client certificate may carry. Real ones carry about ten; the cap bounds the work spent on a
/// certificate packed with extensions up to the PEM size cap.
pub(crate) const MAX_EXTENSIONS: usize = 32;

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
    /// The CN of the CA certificate that issued this one in the chain webpki built (a CA of the truststore), when
    /// that CA's subject has exactly one CN.
    pub issuer_cn: Option<String>,
    /// SHA-256 of that CA certificate's DER SubjectPublicKeyInfo: what a `subject_cn` rule's `issuer_spki_sha256`
    /// pins.
    pub issuer_spki_sha256: [u8; 32],
    /// Another CA of the truststore, with another key, has the same CN as the issuing CA: the CN alone does not say
    /// which CA issued the certificate.
    pub issuer_cn_shared: bool,
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
            .field("issuer_spki_sha256", &hex::encode(self.issuer_spki_sha256))
            .field("issuer_cn_shared", &self.issuer_cn_shared)
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
    /// The CRL bundle as parsed, kept so its CRLs can be verified again when the truststore changes.
    crl_bundle: Option<Arc<CrlBundle>>,
    crl_etag: Option<String>,
    /// The CRLs of the bundle that verified against the truststore, by issuing CA.
    revocation: Option<Arc<RevocationIndex>>,
    /// Whether the passing of the earliest CRL nextUpdate was already reported as a change (once per material).
    stale_signalled: AtomicBool,
}

const NEVER: u64 = u64::MAX;

/// How often the sources are asked again while the truststore, or a configured CRL bundle, has never loaded (a
/// failed cold start): certificate callers are refused meanwhile, so waiting a whole refresh interval would stretch a
/// passing S3 error into a minute of refusals. Short enough for that, long enough that one request in several
/// seconds, not every request, pays for a read that may time out.
const RETRY_WHILE_MISSING: Duration = Duration::from_secs(5);

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
    /// The weakest key accepted, on the client certificate and on every CA of its chain.
    key_floor: KeyFloor,
    /// Issuer CNs named by `subject_cn` rules that pin no issuer key, for the load-time warning about CAs that
    /// share a CN.
    unpinned_issuer_cns: Vec<String>,
    /// Where each refresh reports the material's health (see [`CertVerifier::with_metrics`]).
    metrics: Option<MetricsSink>,
    /// Reads of the truststore or CRL bundle that failed or were refused by the loader, since the last
    /// [`CertVerifier::take_read_failures`].
    read_failures: AtomicU64,
}

impl std::fmt::Debug for CertVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = self.snapshot();
        f.debug_struct("CertVerifier")
            .field("truststore", &self.truststore_src.describe())
            .field("crls", &self.crl_src.as_ref().map(|s| s.describe()))
            .field("anchors", &m.truststore.as_ref().map_or(0, |t| t.anchors.len()))
            .field("intermediates", &m.truststore.as_ref().map_or(0, |t| t.intermediates.len()))
            .field("crl_count", &m.revocation.as_ref().map_or(0, |r| r.len()))
            .field("key_floor", &self.key_floor)
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
            key_floor: KeyFloor::DEFAULT,
            unpinned_issuer_cns: Vec::new(),
            metrics: None,
            read_failures: AtomicU64::new(0),
        }
    }

    /// Reports the trust material's health to `sink` at every refresh (the cold start's included): the
    /// `TruststoreSecondsToExpiry` and `CrlSecondsToNextUpdate` gauges of the material in use, and a
    /// `TrustRefreshFailures` for each object the refresh could not use. Without it nothing is reported (tools that
    /// only explain a decision). Call it before the first [`CertVerifier::refresh`].
    pub fn with_metrics(mut self, sink: MetricsSink) -> Self {
        self.metrics = Some(sink);
        self
    }

    /// How many reads of the truststore or CRL bundle failed (unreachable, missing, or refused by the loader) since
    /// the last call, and resets the count: the handler reports them as `AuthorizerErrors` with reason
    /// `trust_refresh_failed`, from the request whose refresh met them.
    pub(crate) fn take_read_failures(&self) -> u64 {
        self.read_failures.swap(0, Ordering::AcqRel)
    }

    /// Takes what certificate verification needs from the policy: its key floor (`settings.min_rsa_key_bits`,
    /// `settings.min_ec_key_bits`; without this call the verifier holds [`KeyFloor::DEFAULT`], RSA-2048 and
    /// P-256), and its `subject_cn` rules, so that loading a truststore where two CAs share a CN those rules name
    /// says which rules now match nothing. Call it before the first [`CertVerifier::refresh`].
    pub fn with_policy(mut self, policy: &Policy) -> Self {
        self.key_floor = policy.key_floor;
        let mut cns: Vec<String> = policy
            .callers()
            .iter()
            .flat_map(|c| &c.identities)
            .filter_map(|i| match i {
                Identity::SubjectCn { issuer_cn, issuer_spki_sha256: None, .. } => Some(issuer_cn.clone()),
                _ => None,
            })
            .collect();
        cns.sort();
        cns.dedup();
        self.unpinned_issuer_cns = cns;
        self
    }

    /// The weakest key accepted on a client certificate and on the CAs of its chain.
    pub fn key_floor(&self) -> KeyFloor {
        self.key_floor
    }

    /// How many CRLs are in use: those of the bundle that verified against the truststore, plus any kept because
    /// their replacement was refused.
    pub fn crls_in_use(&self) -> usize {
        self.snapshot().revocation.as_ref().map_or(0, |r| r.len())
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
        self.snapshot().revocation.as_ref().and_then(|r| r.fresh_until)
    }

    /// Loads the truststore and CRLs now (cold start, or a forced refresh). Returns whether material changed.
    /// `Err` when either object could not be fetched or parsed; whatever did load is installed, the rest keeps its
    /// last good version, and `verify_pem` fails closed where material is missing. A cold start should log the
    /// error and carry on: the next [`CertVerifier::refresh_if_due`] retries.
    pub async fn refresh(&self) -> Result<bool, MtlsError> {
        let _guard = self.refresh_lock.lock().await;
        let (changed, err) = self.refresh_locked(SystemTime::now()).await;
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
        let (changed, err) = self.refresh_locked(now).await;
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
        let missing = {
            let m = self.snapshot();
            m.truststore.is_none() || (self.crl_src.is_some() && m.crl_bundle.is_none())
        };
        let interval =
            if missing { self.cfg.refresh_interval.min(RETRY_WHILE_MISSING) } else { self.cfg.refresh_interval };
        let interval = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX);
        now.saturating_sub(last) >= interval
    }

    fn signal_stale(&self, now: SystemTime) -> bool {
        let m = self.snapshot();
        let stale = m.revocation.as_ref().and_then(|r| r.fresh_until).is_some_and(|t| now >= t);
        if stale && !m.stale_signalled.swap(true, Ordering::AcqRel) {
            self.generation.fetch_add(1, Ordering::AcqRel);
            tracing::warn!("a CRL is past its nextUpdate: certificates of its issuer are refused until a fresh CRL");
            return true;
        }
        false
    }

    /// One refresh: reads both objects, installs what changed, and reports the outcome (see
    /// [`CertVerifier::with_metrics`]).
    async fn refresh_locked(&self, now: SystemTime) -> (bool, Option<MtlsError>) {
        let mut failures = RefreshFailures::default();
        let outcome = self.reload(now, &mut failures).await;
        let reads_failed = failures.reads();
        if reads_failed > 0 {
            self.read_failures.fetch_add(reads_failed, Ordering::AcqRel);
        }
        if let Some(sink) = &self.metrics {
            let m = self.snapshot();
            let truststore_expiry = m.truststore.as_ref().and_then(|t| t.cas.iter().map(|ca| ca.not_after).min());
            failures.report(sink, now, truststore_expiry, m.revocation.as_ref().and_then(|r| r.fresh_until));
        }
        outcome
    }

    async fn reload(&self, now: SystemTime, failures: &mut RefreshFailures) -> (bool, Option<MtlsError>) {
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
                    failures.truststore = true;
                    first_err = Some(MtlsError::TruststoreInvalid(reason));
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "truststore fetch failed; keeping the last good one");
                failures.truststore = true;
                first_err = Some(MtlsError::TruststoreUnavailable(e));
            }
        }

        let mut new_crls = None;
        if let Some(src) = &self.crl_src {
            match src.fetch(current.crl_etag.as_deref()).await {
                Ok(Fetched::Unchanged) => {}
                Ok(Fetched::Changed { body, etag }) => match parse_bundle(&body) {
                    Ok(set) => new_crls = Some((Arc::new(set), etag)),
                    Err(reason) => {
                        tracing::warn!(%reason, etag = %etag, "refused new CRL bundle; keeping the last good one");
                        failures.crl_read = true;
                        first_err.get_or_insert(MtlsError::CrlInvalid(reason));
                    }
                },
                Err(e) => {
                    tracing::warn!(error = %e, "CRL fetch failed; keeping the last good CRLs");
                    failures.crl_read = true;
                    first_err.get_or_insert(MtlsError::CrlUnavailable(e));
                }
            }
        }

        if new_ts.is_none() && new_crls.is_none() {
            return (false, first_err);
        }
        let truststore_changed = new_ts.is_some();
        let crls_changed = new_crls.is_some();
        let (truststore, truststore_etag) = match new_ts {
            Some((ts, etag)) => (Some(ts), Some(etag)),
            None => (current.truststore.clone(), current.truststore_etag.clone()),
        };
        let (crl_bundle, crl_etag) = match new_crls {
            Some((c, etag)) => (Some(c), Some(etag)),
            None => (current.crl_bundle.clone(), current.crl_etag.clone()),
        };
        if let (true, Some(ts)) = (truststore_changed, &truststore) {
            self.log_truststore_findings(ts);
        }
        if let (true, Some(bundle)) = (crls_changed, &crl_bundle) {
            for note in revocation::load_notes(bundle, now) {
                tracing::warn!(%note, "CRL loaded");
            }
            // Published already past its nextUpdate: loaded (it still proves revocations), but the refresh did not
            // bring the fresh CRLs certificates need.
            failures.crl_refused |= bundle.earliest_next_update().is_some_and(|t| now >= t);
        }
        // Verify the CRLs once, here, against the truststore in use; a request only looks them up.
        let revocation = match (&truststore, &crl_bundle) {
            (Some(ts), Some(bundle)) => {
                let built = RevocationIndex::build(&ts.cas, bundle, current.revocation.as_deref());
                failures.crl_refused |= !built.refused.is_empty();
                for r in &built.refused {
                    tracing::warn!(
                        crl = r.position,
                        issuer = %r.issuer,
                        reason = %r.reason,
                        "CRL refused; the CRL in use for its CA, if any, stays in use"
                    );
                }
                if built.kept > 0 {
                    tracing::warn!(kept = built.kept, "CRLs kept in use because their replacement was refused");
                }
                Some(Arc::new(built.index))
            }
            _ => None,
        };
        let next = Material {
            truststore,
            truststore_etag,
            crl_bundle,
            crl_etag,
            revocation,
            stale_signalled: AtomicBool::new(false),
        };
        tracing::info!(
            anchors = next.truststore.as_ref().map_or(0, |t| t.anchors.len()),
            intermediates = next.truststore.as_ref().map_or(0, |t| t.intermediates.len()),
            cas = ?next.truststore.as_ref().map(|t| t.names.clone()).unwrap_or_default(),
            crls = next.crl_bundle.as_ref().map_or(0, |c| c.len()),
            crls_in_use = next.revocation.as_ref().map_or(0, |r| r.len()),
            truststore_etag = next.truststore_etag.as_deref().unwrap_or(""),
            crl_etag = next.crl_etag.as_deref().unwrap_or(""),
            "mTLS trust material loaded"
        );
        *tb_shared::sync::write(&self.material) = Arc::new(next);
        self.generation.fetch_add(1, Ordering::AcqRel);
        (true, first_err)
    }

    /// Says once per truststore load what will refuse certificates or rules because of how the truststore is made:
    /// CAs whose key is below the floor, and CAs sharing a CN.
    fn log_truststore_findings(&self, ts: &Truststore) {
        for ca in ts.cas.iter().filter(|ca| !ca.key.meets(&self.key_floor)) {
            tracing::warn!(
                ca = %ca.label,
                key = %ca.key,
                minimum = %ca.key.minimum(&self.key_floor),
                "a truststore CA's key is below the key floor: certificates whose chain uses it are refused"
            );
        }
        for (cn, keys) in ts.shared_cns() {
            if self.unpinned_issuer_cns.contains(&cn) {
                tracing::warn!(
                    issuer_cn = %cn,
                    cas = keys,
                    "CAs with different keys share a CN that subject_cn rules name without issuer_spki_sha256: \
                     those rules are ambiguous and deny until they pin the issuer's key"
                );
            } else {
                tracing::warn!(
                    issuer_cn = %cn,
                    cas = keys,
                    "CAs with different keys share a CN: a subject_cn rule naming it must pin issuer_spki_sha256"
                );
            }
        }
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
        if exts.len() > MAX_EXTENSIONS {
            return Err(CertError::TooManyExtensions);
        }
        let mut oids: Vec<&[u8]> = exts.iter().map(|e| e.oid.as_bytes()).collect();
        oids.sort_unstable();
        if oids.windows(2).any(|w| w[0] == w[1]) {
            return Err(CertError::DuplicateExtension);
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
        // webpki never looks at the key the leaf certifies (it signs the TLS handshake, not anything webpki checks).
        let key = KeyStrength::of_spki(cert.public_key().raw);
        if !key.meets(&self.key_floor) {
            return Err(CertError::WeakKey { key: key.to_string(), minimum: key.minimum(&self.key_floor) });
        }

        let material = self.snapshot();
        let ts = material.truststore.as_ref().ok_or(CertError::NoTrustMaterial)?;
        let since_epoch = now.duration_since(UNIX_EPOCH).map_err(|_| CertError::NotYetValid)?;
        let time = UnixTime::since_unix_epoch(since_epoch);

        // Revocation is not webpki's to check here (it would verify the CRL's signature on every request): each
        // candidate chain webpki builds is checked against the key floor and against CRLs verified once, at load.
        // A candidate that fails sends webpki on to the next one (a cross-signed CA may offer another path); when
        // none passes, the failure of a built chain is what is reported, a revocation first.
        let failure: RefCell<Option<CertError>> = RefCell::new(None);
        let accept = |candidate: &webpki::VerifiedPath<'_>| -> Result<(), webpki::Error> {
            let verdict = chain_of(ts, candidate).and_then(|chain| self.check_chain(&material, &cert, &chain, now));
            verdict.map_err(|e| {
                let mut f = failure.borrow_mut();
                if f.as_ref() != Some(&CertError::Revoked) {
                    *f = Some(e);
                }
                webpki::Error::UnknownIssuer // not reported: `failure` is
            })
        };
        let cert_der = CertificateDer::from(der.as_slice());
        let ee = webpki::EndEntityCert::try_from(&cert_der).map_err(map_webpki)?;
        let path = ee
            .verify_for_usage(
                webpki::ALL_VERIFICATION_ALGS,
                &ts.anchors,
                &ts.intermediates,
                time,
                KeyUsage::client_auth(),
                None,
                Some(&accept),
            )
            .map_err(|e| failure.take().unwrap_or_else(|| map_webpki(e)))?;
        let chain = chain_of(ts, &path)?;
        let issuer = *chain.first().ok_or(CertError::UntrustedIssuer)?;

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
        // IA5String names hold ASCII; x509-parser passes other bytes through. A name with a byte outside visible
        // ASCII (a NUL that C code stops at, a space, UTF-8 that looks like a registered name) is no name a rule
        // could mean, so the certificate is refused rather than compared.
        let visible = |n: &String| n.bytes().all(|b| b.is_ascii_graphic());
        if !san_uris.iter().chain(&san_dns).all(visible) {
            return Err(CertError::MalformedDer);
        }
        Ok(VerifiedCert {
            cert_sha256: Sha256::digest(&der).into(),
            spki_sha256: Sha256::digest(cert.public_key().raw).into(),
            san_uris,
            san_dns,
            subject_cn: single_cn(cert.subject()),
            issuer_cn: issuer.cn.clone(),
            issuer_spki_sha256: issuer.spki_sha256,
            issuer_cn_shared: issuer.cn_shared,
            // The chain is only as valid as its shortest-lived certificate: a cached decision must end when an
            // intermediate expires, not only the client certificate. (The last CA is the trust anchor, whose own
            // validity path validation does not check, so neither does this.)
            not_after: chain[..chain.len().saturating_sub(1)]
                .iter()
                .map(|ca| ca.not_after)
                .fold(asn1_to_system_time(cert.validity().not_after), |a, b| a.min(b)),
        })
    }

    /// What a chain webpki built must also satisfy: every CA of it meets the key floor, and (with a CRL source)
    /// the client certificate and every intermediate are not revoked, each by its issuer in the chain, against the
    /// verified CRLs. A revoked certificate anywhere in the chain is [`CertError::Revoked`]; otherwise the first
    /// certificate (from the leaf up) whose status is stale or unknown decides.
    fn check_chain(
        &self,
        material: &Material,
        leaf: &X509Certificate<'_>,
        chain: &[&CaInfo],
        now: SystemTime,
    ) -> Result<(), CertError> {
        if let Some(weak) = chain.iter().find(|ca| !ca.key.meets(&self.key_floor)) {
            return Err(CertError::WeakCaKey { key: weak.key.to_string(), minimum: weak.key.minimum(&self.key_floor) });
        }
        if self.crl_src.is_none() {
            return Ok(());
        }
        let Some(index) = material.revocation.as_deref() else {
            // no CRL bundle loaded (or no truststore to verify it with)
            return if self.cfg.require_crl { Err(CertError::RevocationUnknown) } else { Ok(()) };
        };
        let Some((issuer, above)) = chain.split_first() else { return Err(CertError::RevocationUnknown) };
        let leaf_dps = if index.scoped(&issuer.id) {
            crl_distribution_uris(leaf).map_err(|()| CertError::MalformedDer)?
        } else {
            None
        };
        let mut statuses = Vec::with_capacity(chain.len());
        statuses.push(index.status(&issuer.id, leaf.raw_serial(), Role::Leaf, leaf_dps.as_deref(), now));
        // each intermediate, by the CA above it (the anchor itself has no issuer to ask)
        for (ca, its_issuer) in chain.iter().zip(above) {
            statuses.push(index.status(&its_issuer.id, &ca.serial, Role::Ca, ca.crl_dps.as_deref(), now));
        }
        if statuses.contains(&Status::Revoked) {
            return Err(CertError::Revoked);
        }
        for s in statuses {
            match s {
                Status::Good | Status::Revoked => {}
                Status::Stale => return Err(CertError::StaleCrl),
                Status::Unknown if self.cfg.require_crl => return Err(CertError::RevocationUnknown),
                Status::Unknown => {}
            }
        }
        Ok(())
    }
}

/// The CAs of a chain webpki built, nearest first (the first issued the client certificate), as the truststore
/// knows them.
fn chain_of<'t>(ts: &'t Truststore, path: &webpki::VerifiedPath<'_>) -> Result<Vec<&'t CaInfo>, CertError> {
    let outside = || CertError::Invalid("chain uses a certificate outside the truststore".into());
    let mut chain = Vec::with_capacity(4);
    for c in path.intermediate_certificates() {
        chain.push(ts.intermediate_info(c.der().as_ref()).ok_or_else(outside)?);
    }
    chain.push(ts.anchor_info(path.anchor()).ok_or_else(outside)?);
    Ok(chain)
}

#[allow(deprecated)]
fn map_webpki(e: webpki::Error) -> CertError {
    use webpki::Error as E;
    match e {
        E::CertExpired { .. } => CertError::Expired,
        E::CertNotValidYet { .. } => CertError::NotYetValid,
        E::CaUsedAsEndEntity => CertError::CaAsLeaf,
        E::RequiredEkuNotFound | E::RequiredEkuNotFoundContext(_) | E::EmptyEkuExtension => CertError::NoClientAuthEku,
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
