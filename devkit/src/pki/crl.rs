//! CRLs built field by field, for what rcgen does not make: a chosen or missing CRL number, an
//! issuingDistributionPoint with a scope, a delta CRL indicator, a signature by the wrong key. The DER is written
//! here and signed with the CA's key, so every CRL is genuinely signed unless asked otherwise.

use rcgen::SigningKey;

use super::*;
use crate::pki::encoding::der_tlv;

/// Which certificates a scoped CRL covers (its issuingDistributionPoint's onlyContains… flag).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrlScope {
    /// onlyContainsUserCerts: end-entity certificates only.
    UserCertsOnly,
    /// onlyContainsCACerts: CA certificates only.
    CaCertsOnly,
}

/// Builder for a CRL of a [`TestCa`]; see [`TestCa::crl_builder`].
pub struct CrlBuilder<'a> {
    ca: &'a TestCa,
    revoked: Vec<Vec<u8>>,
    this_update: SystemTime,
    next_update: SystemTime,
    number: Option<Vec<u8>>,
    distribution_point: Option<String>,
    scope: Option<CrlScope>,
    delta_of: Option<u64>,
    wrong_key: bool,
}

impl TestCa {
    /// Starts a CRL of this CA. Defaults: nothing revoked, thisUpdate an hour ago, nextUpdate in an hour, the next
    /// CRL number of this process ([`next_crl_number`]), no issuingDistributionPoint, signed with the CA's key.
    pub fn crl_builder(&self) -> CrlBuilder<'_> {
        let now = SystemTime::now();
        CrlBuilder {
            ca: self,
            revoked: Vec::new(),
            this_update: now - Duration::from_secs(3600),
            next_update: now + Duration::from_secs(3600),
            number: Some(next_crl_number().to_be_bytes().to_vec()),
            distribution_point: None,
            scope: None,
            delta_of: None,
            wrong_key: false,
        }
    }
}

impl CrlBuilder<'_> {
    /// Lists a serial (raw big-endian bytes as in [`IssuedCert::serial`]).
    pub fn revoke(mut self, serial: &[u8]) -> Self {
        self.revoked.push(serial.to_vec());
        self
    }
    /// thisUpdate and nextUpdate.
    pub fn validity(mut self, this_update: SystemTime, next_update: SystemTime) -> Self {
        self.this_update = this_update;
        self.next_update = next_update;
        self
    }
    /// The CRL number.
    pub fn number(mut self, n: u64) -> Self {
        self.number = Some(n.to_be_bytes().to_vec());
        self
    }
    /// No CRL number extension (RFC 5280 requires one; some CAs omit it).
    pub fn no_number(mut self) -> Self {
        self.number = None;
        self
    }
    /// An issuingDistributionPoint naming this URI as its full name: the CRL covers the certificates whose CRL
    /// distribution point names it (a partition of the CA's certificates).
    pub fn distribution_point(mut self, uri: impl Into<String>) -> Self {
        self.distribution_point = Some(uri.into());
        self
    }
    /// An issuingDistributionPoint limited to user or CA certificates (with the distribution point, if set).
    pub fn scope(mut self, scope: CrlScope) -> Self {
        self.scope = Some(scope);
        self
    }
    /// A critical deltaCRLIndicator naming this base CRL number: a delta CRL, which lists only the changes since
    /// that base.
    pub fn delta_of(mut self, base: u64) -> Self {
        self.delta_of = Some(base);
        self
    }
    /// Signed with a fresh key of the CA's kind instead of the CA's own: a forged CRL.
    pub fn signed_with_wrong_key(mut self) -> Self {
        self.wrong_key = true;
        self
    }

    /// Writes and signs the CRL.
    pub fn build(self) -> Result<TestCrl, PkiError> {
        let alg = self.ca.key.algorithm();
        let (alg_id, kind): (&[u8], KeyKind) = if alg == &rcgen::PKCS_ECDSA_P256_SHA256 {
            (&[0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02], KeyKind::EcdsaP256)
        } else if alg == &rcgen::PKCS_ECDSA_P384_SHA384 {
            (&[0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03], KeyKind::EcdsaP384)
        } else if alg == &rcgen::PKCS_ED25519 {
            (&[0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70], KeyKind::Ed25519)
        } else if alg == &rcgen::PKCS_RSA_SHA256 {
            (
                &[0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b, 0x05, 0x00],
                KeyKind::Rsa2048,
            )
        } else {
            return Err(PkiError::Invalid("CRL builder: unsupported CA key algorithm".into()));
        };
        let (subject, key_id) = {
            use x509_parser::extensions::ParsedExtension;
            use x509_parser::prelude::FromDer;
            let (_, cert) = x509_parser::certificate::X509Certificate::from_der(self.ca.cert_der())
                .map_err(|e| PkiError::Invalid(format!("CA certificate: {e}")))?;
            let key_id = cert.extensions().iter().find_map(|e| match e.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
                _ => None,
            });
            (cert.subject().as_raw().to_vec(), key_id)
        };

        let mut tbs = der_tlv(0x02, &[0x01]); // v2
        tbs.extend_from_slice(alg_id);
        tbs.extend_from_slice(&subject);
        tbs.extend(der_time(self.this_update));
        tbs.extend(der_time(self.next_update));
        if !self.revoked.is_empty() {
            let mut entries = Vec::new();
            for serial in &self.revoked {
                let mut entry = der_tlv(0x02, &positive(serial));
                entry.extend(der_time(self.this_update));
                entries.extend(der_tlv(0x30, &entry));
            }
            tbs.extend(der_tlv(0x30, &entries));
        }
        let mut exts = Vec::new();
        if let Some(id) = &key_id {
            // authorityKeyIdentifier { keyIdentifier [0] }, which RFC 5280 requires on every CRL
            exts.extend(extension(&[0x55, 0x1d, 0x23], false, &der_tlv(0x30, &der_tlv(0x80, id))));
        }
        if let Some(n) = &self.number {
            exts.extend(extension(&[0x55, 0x1d, 0x14], false, &der_tlv(0x02, &positive(n))));
        }
        if self.distribution_point.is_some() || self.scope.is_some() {
            let mut idp = Vec::new();
            if let Some(uri) = &self.distribution_point {
                let full_name = der_tlv(0xa0, &der_tlv(0x86, uri.as_bytes()));
                idp.extend(der_tlv(0xa0, &full_name));
            }
            match self.scope {
                Some(CrlScope::UserCertsOnly) => idp.extend(der_tlv(0x81, &[0xff])),
                Some(CrlScope::CaCertsOnly) => idp.extend(der_tlv(0x82, &[0xff])),
                None => {}
            }
            exts.extend(extension(&[0x55, 0x1d, 0x1c], true, &der_tlv(0x30, &idp)));
        }
        if let Some(base) = self.delta_of {
            exts.extend(extension(&[0x55, 0x1d, 0x1b], true, &der_tlv(0x02, &positive(&base.to_be_bytes()))));
        }
        tbs.extend(der_tlv(0xa0, &der_tlv(0x30, &exts)));
        let tbs = der_tlv(0x30, &tbs);

        let signature = if self.wrong_key { kind.generate()?.sign(&tbs)? } else { self.ca.key.sign(&tbs)? };
        let mut bits = vec![0u8];
        bits.extend(signature);
        let mut body = tbs;
        body.extend_from_slice(alg_id);
        body.extend(der_tlv(0x03, &bits));
        let der = der_tlv(0x30, &body);
        Ok(TestCrl { pem: to_pem("X509 CRL", &der), der })
    }
}

/// The content octets of a positive INTEGER with this big-endian magnitude (leading zeros dropped, a zero octet
/// added when the high bit is set).
fn positive(magnitude: &[u8]) -> Vec<u8> {
    let start = magnitude.iter().position(|&b| b != 0).unwrap_or(magnitude.len().saturating_sub(1));
    let trimmed = magnitude.get(start..).unwrap_or(&[0]);
    let mut out = Vec::with_capacity(trimmed.len() + 1);
    if trimmed.first().is_none_or(|&b| b & 0x80 != 0) {
        out.push(0);
    }
    out.extend_from_slice(trimmed);
    out
}

fn extension(oid: &[u8], critical: bool, value: &[u8]) -> Vec<u8> {
    let mut ext = der_tlv(0x06, oid);
    if critical {
        ext.extend(der_tlv(0x01, &[0xff]));
    }
    ext.extend(der_tlv(0x04, value));
    der_tlv(0x30, &ext)
}

/// UTCTime before 2050, GeneralizedTime from then on (RFC 5280 §5.1.2.4).
fn der_time(t: SystemTime) -> Vec<u8> {
    let t = OffsetDateTime::from(t);
    let (y, mo, d, h, mi, s) = (t.year(), u8::from(t.month()), t.day(), t.hour(), t.minute(), t.second());
    if (1950..2050).contains(&y) {
        der_tlv(0x17, format!("{:02}{mo:02}{d:02}{h:02}{mi:02}{s:02}Z", y % 100).as_bytes())
    } else {
        der_tlv(0x18, format!("{y:04}{mo:02}{d:02}{h:02}{mi:02}{s:02}Z").as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_positive_and_minimal() {
        assert_eq!(positive(&[0, 0, 5]), vec![5]);
        assert_eq!(positive(&[0x80]), vec![0, 0x80]);
        assert_eq!(positive(&[0, 0]), vec![0]);
    }

    #[test]
    fn built_crls_parse() {
        use x509_parser::prelude::FromDer;
        let ca = TestCa::root("CRL Builder Root").unwrap();
        let crl = ca
            .crl_builder()
            .revoke(&[0x80, 1])
            .number(7)
            .distribution_point("http://crl.example/a.crl")
            .scope(CrlScope::UserCertsOnly)
            .build()
            .unwrap();
        let (_, parsed) = x509_parser::revocation_list::CertificateRevocationList::from_der(&crl.der).unwrap();
        assert_eq!(parsed.iter_revoked_certificates().count(), 1);
        assert_eq!(parsed.crl_number().map(|n| n.to_string()), Some("7".into()));
        assert_eq!(
            parsed.issuer().to_string(),
            ca.crl(&[], SystemTime::now(), SystemTime::now() + Duration::from_secs(9))
                .map(|c| {
                    let (_, p) = x509_parser::revocation_list::CertificateRevocationList::from_der(&c.der).unwrap();
                    p.issuer().to_string()
                })
                .unwrap()
        );
        let forged = ca.crl_builder().signed_with_wrong_key().build().unwrap();
        assert_ne!(forged.der, crl.der);
        let delta = ca.crl_builder().no_number().delta_of(3).build().unwrap();
        let (_, delta) = x509_parser::revocation_list::CertificateRevocationList::from_der(&delta.der).unwrap();
        assert_eq!(delta.crl_number(), None);
        assert_eq!(delta.extensions().len(), 2, "authorityKeyIdentifier and deltaCRLIndicator");
    }
}
