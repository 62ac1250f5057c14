//! NOT FOR PRODUCTION. A throw-away test PKI made at run time with rcgen: root and intermediate CAs, client
//! certificates with every property the authorizer's attack suites need to vary (SANs, CN, validity window, EKU,
//! CA flag, key type, serial, extra or duplicated extensions), server certificates, CRLs (honest or signed with the
//! wrong key) and PEM bundles.
//!
//! Nothing here is committed to the repository: every key and certificate is generated when a test, benchmark or the
//! local stack starts, so nothing expires in the tree and no private key is ever checked in. The keys live in
//! process memory and are handed out as PEM; the local stack keeps its CA in its (git-ignored) state directory and
//! reloads it with [`TestCa::from_pem`].
//!
//! ```no_run
//! # fn main() -> Result<(), tb_devkit::pki::PkiError> {
//! use tb_devkit::pki::TestCa;
//! let root = TestCa::root("Example Root CA")?;
//! let leaf = root.issue_client().cn("orders").san_uri("spiffe://example.internal/orders").build()?;
//! let crl = root.crl(&[&leaf.serial], std::time::SystemTime::now(), std::time::SystemTime::now() + std::time::Duration::from_secs(3600))?;
//! # let _ = (leaf.pem, crl.pem);
//! # Ok(()) }
//! ```

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use rand::Rng;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CustomExtension, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, RevokedCertParams, RsaKeySize,
    SanType, SerialNumber,
};
use rustls_pki_types::CertificateDer;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

/// OID of the subjectAltName extension, for crafting a duplicate one.
pub const OID_SUBJECT_ALT_NAME: &[u64] = &[2, 5, 29, 17];

/// Why generation failed (a bad option, such as a non-IA5 SAN, or a key-generation failure).
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("rcgen: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("invalid option: {0}")]
    Invalid(String),
}

/// Key algorithm of a generated CA or leaf. ECDSA P-256 is the default: it is what most internal PKIs issue today.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyKind {
    #[default]
    EcdsaP256,
    EcdsaP384,
    Ed25519,
    Rsa2048,
}

impl KeyKind {
    /// Generates a fresh key of this kind.
    pub fn generate(self) -> Result<KeyPair, PkiError> {
        Ok(match self {
            KeyKind::EcdsaP256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?,
            KeyKind::EcdsaP384 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384)?,
            KeyKind::Ed25519 => KeyPair::generate_for(&rcgen::PKCS_ED25519)?,
            KeyKind::Rsa2048 => KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_2048)?,
        })
    }
}

/// The CRL number of the next CRL this process makes: increasing, as a CA's CRL numbers are (RFC 5280 §5.2.3),
/// so a CRL made later is newer than one made earlier (the authorizer refuses to go back to an older CRL). Seeded
/// from the clock in microseconds, so a later process (the local stack reusing its CA) keeps counting upwards.
pub fn next_crl_number() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64);
    let mut last = LAST.load(Ordering::Relaxed);
    loop {
        let next = now.max(last + 1);
        match LAST.compare_exchange_weak(last, next, Ordering::AcqRel, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(seen) => last = seen,
        }
    }
}

/// A random positive 16-byte serial, as a CA would assign (RFC 5280 §4.1.2.2: positive, at most 20 octets).
pub fn random_serial() -> Vec<u8> {
    let mut s = [0u8; 16];
    rand::rng().fill(&mut s[..]);
    s[0] = (s[0] & 0x7f) | 0x01;
    s.to_vec()
}

/// A certificate authority of the test PKI: its parameters, key and certificate, and the certificates above it.
pub struct TestCa {
    params: CertificateParams,
    key: KeyPair,
    der: CertificateDer<'static>,
    pem: String,
    /// PEMs of the issuing CAs above this one, nearest first (empty for a root).
    parents_pem: Vec<String>,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa").field("subject_cn", &self.common_name()).finish_non_exhaustive()
    }
}

/// The organisation of every CA made by [`TestCa::root`] and [`TestCa::intermediate`].
const TEST_ORG: &str = "token-broker test PKI (NOT FOR PRODUCTION)";

fn ca_params(organization: &str, cn: &str, path_len: Option<u8>) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, organization);
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(match path_len {
        Some(n) => BasicConstraints::Constrained(n),
        None => BasicConstraints::Unconstrained,
    });
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let now = OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(3650);
    params.serial_number = Some(SerialNumber::from_slice(&random_serial()));
    params.use_authority_key_identifier_extension = true;
    params
}

impl TestCa {
    /// A self-signed root CA with an ECDSA P-256 key.
    pub fn root(cn: &str) -> Result<TestCa, PkiError> {
        Self::root_with(cn, KeyKind::EcdsaP256)
    }

    /// A self-signed root CA with the given key type.
    pub fn root_with(cn: &str, kind: KeyKind) -> Result<TestCa, PkiError> {
        Self::self_signed(ca_params(TEST_ORG, cn, None), kind)
    }

    /// A self-signed root CA (ECDSA P-256) with its own subject organisation and path-length constraint (`Some(0)`:
    /// it may issue only leaves), e.g. a CA whose subject says which tool made it.
    pub fn root_for(organization: &str, cn: &str, path_len: Option<u8>) -> Result<TestCa, PkiError> {
        Self::self_signed(ca_params(organization, cn, path_len), KeyKind::EcdsaP256)
    }

    fn self_signed(mut params: CertificateParams, kind: KeyKind) -> Result<TestCa, PkiError> {
        params.use_authority_key_identifier_extension = false;
        let key = kind.generate()?;
        let cert = params.self_signed(&key)?;
        Ok(TestCa { pem: cert.pem(), der: cert.der().clone(), params, key, parents_pem: Vec::new() })
    }

    /// A CA reloaded from its certificate and private key (PKCS#8 PEM, as [`TestCa::key_pem`] writes it), e.g. one
    /// kept on disk between runs. Certificates and CRLs it signs name exactly the certificate's subject and carry its
    /// subject key identifier, so they chain to the persisted certificate. The CAs above it are not known:
    /// [`TestCa::chain_bundle_pem`] is this certificate alone.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<TestCa, PkiError> {
        let (_, block) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
            .map_err(|e| PkiError::Invalid(format!("CA certificate PEM: {e}")))?;
        if block.label != "CERTIFICATE" {
            return Err(PkiError::Invalid(format!("CA certificate PEM is a {} block", block.label)));
        }
        let key = KeyPair::from_pem(key_pem)?;
        let params = {
            let cert = block.parse_x509().map_err(|e| PkiError::Invalid(format!("CA certificate: {e}")))?;
            if cert.public_key().raw != rcgen::PublicKeyData::subject_public_key_info(&key).as_slice() {
                return Err(PkiError::Invalid("the private key does not belong to the CA certificate".into()));
            }
            params_of_ca(&cert)?
        };
        let der = CertificateDer::from(block.contents);
        Ok(TestCa { pem: cert_pem.to_owned(), der, params, key, parents_pem: Vec::new() })
    }

    /// An intermediate CA signed by this one (path length 0: it may issue only leaves).
    pub fn intermediate(&self, cn: &str) -> Result<TestCa, PkiError> {
        let params = ca_params(TEST_ORG, cn, Some(0));
        let key = KeyKind::EcdsaP256.generate()?;
        let cert = params.signed_by(&key, &self.issuer())?;
        let mut parents_pem = vec![self.pem.clone()];
        parents_pem.extend(self.parents_pem.iter().cloned());
        Ok(TestCa { pem: cert.pem(), der: cert.der().clone(), params, key, parents_pem })
    }

    /// A different, self-signed CA with exactly this CA's subject DN but its own key: the "lookalike issuer" an
    /// attacker would mint to fool a check that compares DN strings.
    pub fn lookalike(&self) -> Result<TestCa, PkiError> {
        let mut params = self.params.clone();
        params.serial_number = Some(SerialNumber::from_slice(&random_serial()));
        params.use_authority_key_identifier_extension = false;
        // A reloaded CA carries its certificate's key identifier; the lookalike's is derived from its own key.
        params.key_identifier_method = KeyIdMethod::Sha256;
        let key = KeyKind::EcdsaP256.generate()?;
        let cert = params.self_signed(&key)?;
        Ok(TestCa { pem: cert.pem(), der: cert.der().clone(), params, key, parents_pem: Vec::new() })
    }

    fn issuer(&self) -> Issuer<'_, &KeyPair> {
        Issuer::from_params(&self.params, &self.key)
    }

    /// The CA certificate as PEM.
    pub fn cert_pem(&self) -> &str {
        &self.pem
    }

    /// The CA certificate as DER.
    pub fn cert_der(&self) -> &[u8] {
        self.der.as_ref()
    }

    /// The CA's private key as PKCS#8 PEM (for the local stack only).
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// This CA's certificate followed by every CA above it: a complete truststore bundle for its leaves.
    pub fn chain_bundle_pem(&self) -> String {
        let mut parts = vec![self.pem.as_str()];
        parts.extend(self.parents_pem.iter().map(String::as_str));
        pem_bundle(&parts)
    }

    /// The subject CN this CA was created with.
    pub fn common_name(&self) -> String {
        self.params.distinguished_name.get(&DnType::CommonName).map(dn_value_string).unwrap_or_default()
    }

    /// Starts a client (leaf) certificate signed by this CA. Defaults: CN "client", no SANs, valid from an hour
    /// ago for a day, EKU clientAuth, not a CA, ECDSA P-256 key, random serial.
    pub fn issue_client(&self) -> ClientCertBuilder<'_> {
        ClientCertBuilder::new(Some(self))
    }

    /// Starts a TLS server certificate signed by this CA: the defaults of [`TestCa::issue_client`] with EKU
    /// serverAuth instead of clientAuth; name the server with [`ClientCertBuilder::san_dns`] and
    /// [`ClientCertBuilder::san_ip`].
    pub fn issue_server(&self) -> ClientCertBuilder<'_> {
        ClientCertBuilder::new(Some(self)).client_auth(false)
    }

    /// A CRL from this CA listing `revoked` serials (raw big-endian bytes as in [`IssuedCert::serial`]).
    pub fn crl(
        &self,
        revoked: &[&[u8]],
        this_update: SystemTime,
        next_update: SystemTime,
    ) -> Result<TestCrl, PkiError> {
        sign_crl(&self.issuer(), revoked, this_update, next_update)
    }

    /// A CRL that names this CA as issuer but is signed with an unrelated key: what a forged revocation list (or
    /// one from a lookalike CA) looks like.
    pub fn crl_signed_with_wrong_key(
        &self,
        revoked: &[&[u8]],
        this_update: SystemTime,
        next_update: SystemTime,
    ) -> Result<TestCrl, PkiError> {
        let other = KeyKind::EcdsaP256.generate()?;
        sign_crl(&Issuer::from_params(&self.params, &other), revoked, this_update, next_update)
    }
}

/// The parameters an issuer needs, read back from a CA certificate: subject DN (attribute order and string types
/// kept, so issued certificates and CRLs name the issuer byte for byte), basic constraints, key usages, the
/// subject key identifier (reused as the authority key identifier of what it signs), validity and serial.
fn params_of_ca(cert: &x509_parser::certificate::X509Certificate<'_>) -> Result<CertificateParams, PkiError> {
    use x509_parser::der_parser::asn1_rs::Tag;
    use x509_parser::extensions::ParsedExtension;

    let bad = |what: &str| PkiError::Invalid(format!("CA certificate: {what}"));
    let mut dn = DistinguishedName::new();
    for rdn in cert.subject().iter() {
        let mut attrs = rdn.iter();
        let (Some(attr), None) = (attrs.next(), attrs.next()) else {
            return Err(bad("multi-valued or empty RDN in the subject"));
        };
        let oid: Vec<u64> = attr.attr_type().iter().ok_or_else(|| bad("subject attribute OID"))?.collect();
        let data = attr.attr_value().data;
        let text = || std::str::from_utf8(data).map_err(|_| bad("subject attribute is not text"));
        let value = match attr.attr_value().header.tag() {
            Tag::Utf8String => rcgen::DnValue::Utf8String(text()?.to_owned()),
            Tag::PrintableString => rcgen::DnValue::PrintableString(text()?.try_into()?),
            Tag::Ia5String => rcgen::DnValue::Ia5String(text()?.try_into()?),
            Tag::T61String => rcgen::DnValue::TeletexString(text()?.try_into()?),
            Tag::BmpString => rcgen::DnValue::BmpString(rcgen::string::BmpString::from_utf16be(data.to_vec())?),
            Tag::UniversalString => {
                rcgen::DnValue::UniversalString(rcgen::string::UniversalString::from_utf32be(data.to_vec())?)
            }
            _ => return Err(bad("unsupported string type in the subject")),
        };
        dn.push(DnType::from_oid(&oid), value);
    }

    let mut params = CertificateParams::default();
    params.distinguished_name = dn;
    params.is_ca = match cert.basic_constraints().map_err(|_| bad("basicConstraints"))? {
        Some(bc) if bc.value.ca => match bc.value.path_len_constraint {
            None => IsCa::Ca(BasicConstraints::Unconstrained),
            Some(n) => IsCa::Ca(BasicConstraints::Constrained(u8::try_from(n).map_err(|_| bad("path length"))?)),
        },
        _ => return Err(bad("not a CA (basicConstraints CA=true required)")),
    };
    if let Some(ku) = cert.key_usage().map_err(|_| bad("keyUsage"))? {
        let ku = ku.value;
        let flags = [
            (ku.digital_signature(), KeyUsagePurpose::DigitalSignature),
            (ku.non_repudiation(), KeyUsagePurpose::ContentCommitment),
            (ku.key_encipherment(), KeyUsagePurpose::KeyEncipherment),
            (ku.data_encipherment(), KeyUsagePurpose::DataEncipherment),
            (ku.key_agreement(), KeyUsagePurpose::KeyAgreement),
            (ku.key_cert_sign(), KeyUsagePurpose::KeyCertSign),
            (ku.crl_sign(), KeyUsagePurpose::CrlSign),
            (ku.encipher_only(), KeyUsagePurpose::EncipherOnly),
            (ku.decipher_only(), KeyUsagePurpose::DecipherOnly),
        ];
        params.key_usages = flags.into_iter().filter(|(set, _)| *set).map(|(_, usage)| usage).collect();
    }
    for ext in cert.extensions() {
        if let ParsedExtension::SubjectKeyIdentifier(ski) = ext.parsed_extension() {
            params.key_identifier_method = KeyIdMethod::PreSpecified(ski.0.to_vec());
        }
    }
    params.not_before = cert.validity().not_before.to_datetime();
    params.not_after = cert.validity().not_after.to_datetime();
    params.serial_number = Some(SerialNumber::from_slice(cert.raw_serial()));
    params.use_authority_key_identifier_extension = cert.subject().as_raw() != cert.issuer().as_raw();
    Ok(params)
}

fn dn_value_string(v: &rcgen::DnValue) -> String {
    match v {
        rcgen::DnValue::Utf8String(s) => s.clone(),
        rcgen::DnValue::PrintableString(s) => s.as_str().to_owned(),
        rcgen::DnValue::Ia5String(s) => s.as_str().to_owned(),
        rcgen::DnValue::TeletexString(s) => s.as_str().to_owned(),
        _ => String::new(),
    }
}

fn sign_crl(
    issuer: &Issuer<'_, &KeyPair>,
    revoked: &[&[u8]],
    this_update: SystemTime,
    next_update: SystemTime,
) -> Result<TestCrl, PkiError> {
    let this_update = OffsetDateTime::from(this_update);
    let params = CertificateRevocationListParams {
        this_update,
        next_update: OffsetDateTime::from(next_update),
        crl_number: {
            let n = next_crl_number().to_be_bytes();
            let start = n.iter().position(|&b| b != 0).unwrap_or(n.len() - 1);
            SerialNumber::from_slice(&n[start..])
        },
        issuing_distribution_point: None,
        revoked_certs: revoked
            .iter()
            .map(|s| RevokedCertParams {
                serial_number: SerialNumber::from_slice(s),
                revocation_time: this_update,
                reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    };
    let crl = params.signed_by(issuer)?;
    Ok(TestCrl { pem: crl.pem()?, der: crl.der().to_vec() })
}

/// A generated CRL.
#[derive(Clone)]
pub struct TestCrl {
    /// One `X509 CRL` PEM block.
    pub pem: String,
    pub der: Vec<u8>,
}

impl std::fmt::Debug for TestCrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TestCrl({} DER bytes)", self.der.len())
    }
}

mod ca;
mod crl;
mod encoding;
use encoding::general_names_uri;
mod leaf;

pub use ca::CaBuilder;
pub use crl::{CrlBuilder, CrlScope};
pub use encoding::{der_tlv, pem_bundle, to_pem};
pub use leaf::{self_signed_client, ClientCertBuilder, IssuedCert};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_and_leaf_generate() {
        let root = TestCa::root("Root").unwrap();
        let inter = root.intermediate("Inter").unwrap();
        let leaf = inter.issue_client().cn("svc").san_uri("spiffe://x/svc").san_dns("svc.example").build().unwrap();
        assert!(leaf.pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert_eq!(inter.chain_bundle_pem().matches("BEGIN CERTIFICATE").count(), 2);
        assert_eq!(root.common_name(), "Root");
        assert_ne!(leaf.cert_sha256, leaf.spki_sha256);
        let crl = inter.crl(&[&leaf.serial], SystemTime::now(), SystemTime::now() + Duration::from_secs(60)).unwrap();
        assert!(crl.pem.contains("BEGIN X509 CRL"));
    }

    #[test]
    fn reused_key_keeps_spki() {
        let root = TestCa::root_with("Root", KeyKind::Ed25519).unwrap();
        let a = root.issue_client().build().unwrap();
        let b = root.issue_client().key_pem(a.key_pem.clone()).build().unwrap();
        assert_eq!(a.spki_sha256, b.spki_sha256);
        assert_ne!(a.cert_sha256, b.cert_sha256);
    }

    #[test]
    fn a_reloaded_ca_signs_what_chains_to_its_certificate() {
        use std::sync::Arc;

        use rustls_pki_types::{CertificateRevocationListDer, UnixTime};
        use x509_parser::prelude::FromDer;

        let org = "reload test (NOT FOR PRODUCTION)";
        let ca = TestCa::root_for(org, "Reload Root", Some(0)).unwrap();
        let again = TestCa::from_pem(ca.cert_pem(), &ca.key_pem()).unwrap();
        assert_eq!(again.cert_der(), ca.cert_der());
        assert_eq!(again.common_name(), "Reload Root");
        let (_, ca_cert) = x509_parser::certificate::X509Certificate::from_der(ca.cert_der()).unwrap();
        assert_eq!(ca_cert.basic_constraints().unwrap().unwrap().value.path_len_constraint, Some(0));

        let server = again
            .issue_server()
            .organization(org)
            .cn("localhost")
            .san_dns("localhost")
            .san_ip([127, 0, 0, 1])
            .build()
            .unwrap();
        let (_, leaf) = x509_parser::certificate::X509Certificate::from_der(&server.der).unwrap();
        assert_eq!(leaf.issuer().as_raw(), ca_cert.subject().as_raw());
        assert_eq!(leaf.subject_alternative_name().unwrap().unwrap().value.general_names.len(), 2);
        let eku = leaf.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && !eku.client_auth);

        // webpki, trusting only the original certificate, accepts a client certificate of the reloaded CA and
        // refuses it once the reloaded CA's CRL lists it.
        let client = again.issue_client().san_uri("spiffe://x/reloaded").build().unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from(ca.cert_der().to_vec())).unwrap();
        let roots = Arc::new(roots);
        let verify = |crls: Vec<CertificateRevocationListDer<'static>>| {
            rustls::server::WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
                .with_crls(crls)
                .build()
                .unwrap()
                .verify_client_cert(&CertificateDer::from(client.der.clone()), &[], UnixTime::now())
                .map(|_| ())
        };
        verify(Vec::new()).unwrap();
        let now = SystemTime::now();
        let crl = again.crl(&[&client.serial], now, now + Duration::from_secs(60)).unwrap();
        let refused = verify(vec![CertificateRevocationListDer::from(crl.der.clone())]).unwrap_err();
        assert!(format!("{refused:?}").contains("Revoked"), "{refused:?}");

        let other = TestCa::root("Other").unwrap();
        assert!(TestCa::from_pem(ca.cert_pem(), &other.key_pem()).is_err(), "a key of another CA is refused");
        assert!(TestCa::from_pem(&client.pem, &client.key_pem).is_err(), "a leaf is not a CA");
    }

    #[test]
    fn der_tlv_long_form() {
        let v = der_tlv(0x04, &[0u8; 300]);
        assert_eq!(&v[..4], &[0x04, 0x82, 0x01, 0x2c]);
    }
}
