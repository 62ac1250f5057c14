//! Trust material, parsed once per change of the truststore or CRL object so that a request only does the
//! signature check it must: trust anchors and intermediates in webpki's form, what the verifier needs to know about
//! each CA (key, CN, CRL scope), and CRLs pre-parsed (verified in [`super::revocation`]).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls_pki_types::{CertificateDer, TrustAnchor};
use sha2::{Digest, Sha256};
use x509_parser::extensions::{DistributionPointName, GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::keys::KeyStrength;
use super::pem::read_bundle;
use super::revocation::parse_bundle;
use super::MtlsError;

/// Most certificates a truststore bundle may hold. Path building tries every anchor with a matching subject, so
/// this bounds its cost; real truststores hold a handful.
pub(crate) const MAX_TRUSTSTORE_CERTS: usize = 200;

/// Identifies a CA by subject and key together: SHA-256 of its subject DER followed by its SubjectPublicKeyInfo
/// DER. Two certificates of one CA (a renewed root with the same name and key) share it; a lookalike with the same
/// name but another key does not.
pub(crate) type CaId = [u8; 32];

/// What the verifier needs to know about one CA of the truststore, computed at load.
#[derive(Debug, Clone)]
pub(crate) struct CaInfo {
    pub id: CaId,
    /// Subject DER: CRLs name their issuer with it.
    pub subject: Vec<u8>,
    /// The subject's CN when it has exactly one: what `subject_cn` rules name as `issuer_cn`.
    pub cn: Option<String>,
    /// First CN or a placeholder, for logs.
    pub label: String,
    pub spki_der: Vec<u8>,
    /// SHA-256 of the SubjectPublicKeyInfo DER: what `issuer_spki_sha256` pins.
    pub spki_sha256: [u8; 32],
    pub key: KeyStrength,
    /// Another CA of the truststore, with another key, has the same CN.
    pub cn_shared: bool,
    /// keyUsage absent or with cRLSign: the CA may sign CRLs.
    pub crl_sign: bool,
    /// End of the CA certificate's validity: a chain through it, and so a cached decision, ends there too.
    pub not_after: std::time::SystemTime,
    /// Its own CRL distribution point URIs (`None` without the extension), for CRLs scoped by distribution point
    /// when this CA is an intermediate of a chain.
    pub crl_dps: Option<Vec<String>>,
    /// Its serial, for its issuer's CRL when it is an intermediate of a chain.
    pub serial: Vec<u8>,
}

/// The parsed truststore: self-signed CAs become trust anchors, the other CAs intermediates that path building
/// may use (API Gateway's truststore format holds whole chains).
pub(crate) struct Truststore {
    pub anchors: Vec<TrustAnchor<'static>>,
    pub intermediates: Vec<CertificateDer<'static>>,
    /// Every CA, in bundle order.
    pub cas: Vec<CaInfo>,
    /// Index in `cas` of each anchor and each intermediate.
    anchor_ca: Vec<usize>,
    intermediate_ca: Vec<usize>,
    /// Subject CNs, for start-up and rotation logs only.
    pub names: Vec<String>,
}

impl Truststore {
    /// The CA behind a trust anchor webpki built a path to (the anchor is one of `anchors`).
    pub(crate) fn anchor_info(&self, anchor: &TrustAnchor<'_>) -> Option<&CaInfo> {
        let i = self.anchors.iter().position(|a| std::ptr::eq(a, anchor)).or_else(|| {
            self.anchors.iter().position(|a| {
                a.subject.as_ref() == anchor.subject.as_ref()
                    && a.subject_public_key_info.as_ref() == anchor.subject_public_key_info.as_ref()
            })
        })?;
        self.cas.get(*self.anchor_ca.get(i)?)
    }

    /// The CA behind an intermediate of a built path (its DER is one of `intermediates`).
    pub(crate) fn intermediate_info(&self, der: &[u8]) -> Option<&CaInfo> {
        let i = self
            .intermediates
            .iter()
            .position(|d| d.as_ref().as_ptr() == der.as_ptr() && d.as_ref().len() == der.len())
            .or_else(|| self.intermediates.iter().position(|d| d.as_ref() == der))?;
        self.cas.get(*self.intermediate_ca.get(i)?)
    }

    /// CNs carried by CAs with different keys, each with how many keys carry it.
    pub(crate) fn shared_cns(&self) -> Vec<(String, usize)> {
        let mut keys: HashMap<&str, HashSet<[u8; 32]>> = HashMap::new();
        for ca in &self.cas {
            if let Some(cn) = &ca.cn {
                keys.entry(cn.as_str()).or_default().insert(ca.spki_sha256);
            }
        }
        let mut shared: Vec<(String, usize)> =
            keys.into_iter().filter(|(_, k)| k.len() > 1).map(|(cn, k)| (cn.to_owned(), k.len())).collect();
        shared.sort();
        shared
    }
}

pub(crate) fn first_cn(name: &x509_parser::x509::X509Name<'_>) -> String {
    name.iter_common_name().next().and_then(|a| a.as_str().ok()).unwrap_or("<no CN>").to_owned()
}

/// The CN of a name when it has exactly one; two CNs make "the" CN ambiguous, so none is reported.
pub(crate) fn single_cn(name: &x509_parser::x509::X509Name<'_>) -> Option<String> {
    let mut it = name.iter_common_name();
    let first = it.next()?;
    if it.next().is_some() {
        return None;
    }
    first.as_str().ok().map(str::to_owned)
}

/// The URIs of a certificate's CRL distribution points that name a CRL of the certificate's own issuer, for every
/// reason (webpki's rule: points with a cRLIssuer or reasons never match); `None` without the extension, `Err` when
/// it does not parse.
pub(crate) fn crl_distribution_uris(cert: &X509Certificate<'_>) -> Result<Option<Vec<String>>, ()> {
    const OID_CRL_DISTRIBUTION_POINTS: &[u8] = &[0x55, 0x1d, 0x1f];
    let Some(ext) = cert.extensions().iter().find(|e| e.oid.as_bytes() == OID_CRL_DISTRIBUTION_POINTS) else {
        return Ok(None);
    };
    let ParsedExtension::CRLDistributionPoints(points) = ext.parsed_extension() else { return Err(()) };
    let mut uris = Vec::new();
    for p in points.iter().filter(|p| p.reasons.is_none() && p.crl_issuer.is_none()) {
        if let Some(DistributionPointName::FullName(names)) = &p.distribution_point {
            uris.extend(names.iter().filter_map(|g| match g {
                GeneralName::URI(u) => Some((*u).to_owned()),
                _ => None,
            }));
        }
    }
    Ok(Some(uris))
}

pub(crate) fn asn1_to_system_time(t: x509_parser::time::ASN1Time) -> SystemTime {
    let secs = t.timestamp();
    if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
    } else {
        UNIX_EPOCH
    }
}

/// Parses a truststore bundle (PEM `CERTIFICATE` blocks). Every certificate must be a CA (basicConstraints CA=true):
/// a leaf in a truststore is an operator mistake that would otherwise be silently ignored. Any bad block refuses
/// the whole bundle so the last good truststore stays in use.
pub(crate) fn parse_truststore(body: &[u8]) -> Result<Truststore, String> {
    let text = std::str::from_utf8(body).map_err(|_| "not UTF-8 text (expected a PEM bundle)".to_owned())?;
    let blocks = read_bundle(text)?;
    if blocks.len() > MAX_TRUSTSTORE_CERTS {
        return Err(format!("more than {MAX_TRUSTSTORE_CERTS} certificates"));
    }
    let mut ts = Truststore {
        anchors: Vec::new(),
        intermediates: Vec::new(),
        cas: Vec::new(),
        anchor_ca: Vec::new(),
        intermediate_ca: Vec::new(),
        names: Vec::new(),
    };
    for (i, block) in blocks.into_iter().enumerate() {
        let n = i + 1;
        if block.label != "CERTIFICATE" {
            return Err(format!("block {n}: unexpected {} block in a truststore", block.label));
        }
        let (rest, cert) =
            X509Certificate::from_der(&block.der).map_err(|e| format!("block {n}: not a certificate: {e}"))?;
        if !rest.is_empty() {
            return Err(format!("block {n}: trailing bytes"));
        }
        let cn = first_cn(cert.subject());
        let is_ca = matches!(cert.basic_constraints(), Ok(Some(bc)) if bc.value.ca);
        if !is_ca {
            return Err(format!("block {n} ({cn}): not a CA certificate (basicConstraints CA=true required)"));
        }
        let spki_der = cert.public_key().raw.to_vec();
        let subject = cert.subject().as_raw().to_vec();
        let id: CaId = Sha256::new().chain_update(&subject).chain_update(&spki_der).finalize().into();
        let crl_sign = match cert.key_usage() {
            Ok(Some(ku)) => ku.value.crl_sign(),
            Ok(None) => true,
            Err(_) => return Err(format!("block {n} ({cn}): unreadable keyUsage")),
        };
        let crl_dps = crl_distribution_uris(&cert)
            .map_err(|()| format!("block {n} ({cn}): unreadable CRL distribution points"))?;
        let info = CaInfo {
            id,
            cn: single_cn(cert.subject()),
            label: cn.clone(),
            spki_sha256: Sha256::digest(&spki_der).into(),
            key: KeyStrength::of_spki(&spki_der),
            spki_der,
            subject,
            cn_shared: false,
            crl_sign,
            crl_dps,
            serial: cert.raw_serial().to_vec(),
            not_after: asn1_to_system_time(cert.validity().not_after),
        };
        let self_issued = cert.subject().as_raw() == cert.issuer().as_raw();
        let der = CertificateDer::from(block.der.clone());
        if self_issued {
            let anchor = webpki::anchor_from_trusted_cert(&der)
                .map_err(|e| format!("block {n} ({cn}): unusable as trust anchor: {e:?}"))?
                .to_owned();
            ts.anchors.push(anchor);
            ts.anchor_ca.push(ts.cas.len());
        } else {
            ts.intermediates.push(der);
            ts.intermediate_ca.push(ts.cas.len());
        }
        ts.cas.push(info);
        ts.names.push(cn);
    }
    if ts.anchors.is_empty() {
        return Err("no self-signed root CA in the bundle".into());
    }
    let shared: HashSet<String> = ts.shared_cns().into_iter().map(|(cn, _)| cn).collect();
    for ca in &mut ts.cas {
        ca.cn_shared = ca.cn.as_ref().is_some_and(|cn| shared.contains(cn));
    }
    Ok(ts)
}

/// What the authorizer made of a truststore bundle it accepted (see [`load_truststore`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TruststoreSummary {
    /// Self-signed CAs: the trust anchors.
    pub anchors: usize,
    /// The other CAs, which path building may use as intermediates.
    pub intermediates: usize,
    /// Subject CNs, in bundle order.
    pub names: Vec<String>,
    /// CNs that two or more CAs with different keys carry: a `subject_cn` rule naming one as `issuer_cn` matches
    /// nothing unless it pins the issuer's key (`issuer_spki_sha256`), because the CN alone cannot say which CA
    /// issued a certificate.
    pub shared_cns: Vec<String>,
}

/// Loads a truststore bundle exactly as the authorizer does at start and at every refresh: the same strict PEM
/// reader (canonical base64, no bytes after a block's DER), only CA certificates, at least one self-signed root, at
/// most `MAX_TRUSTSTORE_CERTS` (200) certificates. An `Err` is what the authorizer would log when refusing the bundle
/// (it then keeps the last good truststore, or fails closed without one), so operator tooling can check a bundle
/// before it is published.
pub fn load_truststore(bundle: &[u8]) -> Result<TruststoreSummary, MtlsError> {
    let ts = parse_truststore(bundle).map_err(MtlsError::TruststoreInvalid)?;
    let shared_cns = ts.shared_cns().into_iter().map(|(cn, _)| cn).collect();
    Ok(TruststoreSummary {
        anchors: ts.anchors.len(),
        intermediates: ts.intermediates.len(),
        names: ts.names,
        shared_cns,
    })
}

/// What the authorizer made of a CRL bundle it accepted (see [`load_crls`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlSummary {
    /// CRLs in the bundle.
    pub crls: usize,
    /// Earliest nextUpdate over all CRLs (`None` for an empty bundle).
    pub fresh_until: Option<SystemTime>,
}

/// Loads a CRL bundle exactly as the authorizer parses it (PEM `X509 CRL` blocks or one DER CRL, each with
/// nextUpdate, each accepted by webpki's CRL parser). An `Err` is what the authorizer would log when refusing the
/// bundle. Signatures are checked against the truststore when the authorizer loads both; a CRL refused then (bad
/// signature, unknown issuer, older than the one in use) is logged and left out on its own.
pub fn load_crls(bundle: &[u8]) -> Result<CrlSummary, MtlsError> {
    let set = parse_bundle(bundle).map_err(MtlsError::CrlInvalid)?;
    Ok(CrlSummary { crls: set.len(), fresh_until: set.earliest_next_update() })
}
