//! Trust material, parsed once per change of the truststore or CRL object so that a request only does the
//! signature checks it must: trust anchors and intermediates in webpki's form, CRLs pre-parsed.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls_pki_types::CertificateDer;
use webpki::{CertRevocationList, OwnedCertRevocationList};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::revocation_list::CertificateRevocationList;

use super::pem::read_bundle;
use super::MtlsError;

/// Most certificates a truststore bundle may hold. Path building tries every anchor with a matching subject, so
/// this bounds its cost; real truststores hold a handful.
pub(crate) const MAX_TRUSTSTORE_CERTS: usize = 200;
/// Most CRLs a CRL bundle may hold.
pub(crate) const MAX_CRLS: usize = 200;

/// The parsed truststore: self-signed CAs become trust anchors, the other CAs intermediates that path building
/// may use (API Gateway's truststore format holds whole chains).
pub(crate) struct Truststore {
    pub anchors: Vec<rustls_pki_types::TrustAnchor<'static>>,
    pub intermediates: Vec<CertificateDer<'static>>,
    /// Subject CNs, for start-up and rotation logs only.
    pub names: Vec<String>,
}

/// The parsed CRL bundle.
pub(crate) struct CrlSet {
    pub crls: Vec<CertRevocationList<'static>>,
    /// Earliest nextUpdate over all CRLs: from then on at least one issuer's revocation status is stale.
    pub fresh_until: Option<SystemTime>,
}

fn first_cn(name: &x509_parser::x509::X509Name<'_>) -> String {
    name.iter_common_name().next().and_then(|a| a.as_str().ok()).unwrap_or("<no CN>").to_owned()
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
    let mut ts = Truststore { anchors: Vec::new(), intermediates: Vec::new(), names: Vec::new() };
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
        let self_issued = cert.subject().as_raw() == cert.issuer().as_raw();
        let der = CertificateDer::from(block.der.clone());
        if self_issued {
            let anchor = webpki::anchor_from_trusted_cert(&der)
                .map_err(|e| format!("block {n} ({cn}): unusable as trust anchor: {e:?}"))?
                .to_owned();
            ts.anchors.push(anchor);
        } else {
            ts.intermediates.push(der);
        }
        ts.names.push(cn);
    }
    if ts.anchors.is_empty() {
        return Err("no self-signed root CA in the bundle".into());
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
}

/// Loads a truststore bundle exactly as the authorizer does at start and at every refresh: the same strict PEM
/// reader (canonical base64, no bytes after a block's DER), only CA certificates, at least one self-signed root, at
/// most `MAX_TRUSTSTORE_CERTS` (200) certificates. An `Err` is what the authorizer would log when refusing the bundle
/// (it then keeps the last good truststore, or fails closed without one), so operator tooling can check a bundle
/// before it is published.
pub fn load_truststore(bundle: &[u8]) -> Result<TruststoreSummary, MtlsError> {
    let ts = parse_truststore(bundle).map_err(MtlsError::TruststoreInvalid)?;
    Ok(TruststoreSummary { anchors: ts.anchors.len(), intermediates: ts.intermediates.len(), names: ts.names })
}

/// What the authorizer made of a CRL bundle it accepted (see [`load_crls`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlSummary {
    /// CRLs in the bundle.
    pub crls: usize,
    /// Earliest nextUpdate over all CRLs (`None` for an empty bundle).
    pub fresh_until: Option<SystemTime>,
}

/// Loads a CRL bundle exactly as the authorizer does (PEM `X509 CRL` blocks or one DER CRL, each with nextUpdate,
/// each accepted by webpki). An `Err` is what the authorizer would log when refusing the bundle.
pub fn load_crls(bundle: &[u8]) -> Result<CrlSummary, MtlsError> {
    let set = parse_crls(bundle).map_err(MtlsError::CrlInvalid)?;
    Ok(CrlSummary { crls: set.crls.len(), fresh_until: set.fresh_until })
}

/// Parses a CRL bundle: PEM `X509 CRL` blocks, or a single DER CRL. Every CRL must carry nextUpdate (RFC 5280
/// §5.1.2.5 requires it, and without it staleness could not be enforced). An empty bundle is allowed: with
/// `require_crl` it makes every certificate fail closed, which is the operator's explicit choice.
pub(crate) fn parse_crls(body: &[u8]) -> Result<CrlSet, String> {
    let ders: Vec<Vec<u8>> = if body.first() == Some(&0x30) {
        vec![body.to_vec()]
    } else {
        let text = std::str::from_utf8(body).map_err(|_| "neither DER nor PEM text".to_owned())?;
        let blocks = read_bundle(text)?;
        let mut v = Vec::with_capacity(blocks.len());
        for (i, b) in blocks.into_iter().enumerate() {
            if b.label != "X509 CRL" {
                return Err(format!("block {}: unexpected {} block in a CRL bundle", i + 1, b.label));
            }
            v.push(b.der);
        }
        v
    };
    if ders.len() > MAX_CRLS {
        return Err(format!("more than {MAX_CRLS} CRLs"));
    }
    let mut set = CrlSet { crls: Vec::with_capacity(ders.len()), fresh_until: None };
    for (i, der) in ders.iter().enumerate() {
        let n = i + 1;
        let (rest, parsed) =
            CertificateRevocationList::from_der(der).map_err(|e| format!("CRL {n}: not a CRL: {e}"))?;
        if !rest.is_empty() {
            return Err(format!("CRL {n}: trailing bytes"));
        }
        let Some(next) = parsed.next_update() else {
            return Err(format!("CRL {n} ({}): no nextUpdate", first_cn(parsed.issuer())));
        };
        let next = asn1_to_system_time(next);
        set.fresh_until = Some(set.fresh_until.map_or(next, |t| t.min(next)));
        let owned = OwnedCertRevocationList::from_der(der).map_err(|e| format!("CRL {n}: refused by webpki: {e:?}"))?;
        set.crls.push(CertRevocationList::Owned(owned));
    }
    Ok(set)
}
