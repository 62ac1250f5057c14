//! Leaf certificates a test CA issues (client and server), and self-signed ones.

use super::*;

/// A generated client certificate and its key.
#[derive(Clone)]
pub struct IssuedCert {
    /// One `CERTIFICATE` PEM block, as API Gateway hands `clientCertPem` to the authorizer.
    pub pem: String,
    pub der: Vec<u8>,
    /// The leaf's private key, PKCS#8 PEM (for a real TLS client in the local stack).
    pub key_pem: String,
    /// The serial as encoded in the certificate (big-endian, positive).
    pub serial: Vec<u8>,
    /// SHA-256 of the DER certificate: what a `cert_sha256` pin holds.
    pub cert_sha256: [u8; 32],
    /// SHA-256 of the DER SubjectPublicKeyInfo: what a `spki_sha256` pin holds.
    pub spki_sha256: [u8; 32],
}

impl IssuedCert {
    /// Lowercase hex of [`IssuedCert::cert_sha256`], as the policy document writes it.
    pub fn cert_sha256_hex(&self) -> String {
        hex::encode(self.cert_sha256)
    }
    /// Lowercase hex of [`IssuedCert::spki_sha256`], as the policy document writes it.
    pub fn spki_sha256_hex(&self) -> String {
        hex::encode(self.spki_sha256)
    }
}

impl std::fmt::Debug for IssuedCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IssuedCert(sha256={})", self.cert_sha256_hex())
    }
}

/// Builder for a leaf certificate; see [`TestCa::issue_client`] and [`self_signed_client`].
pub struct ClientCertBuilder<'a> {
    ca: Option<&'a TestCa>,
    cn: Option<String>,
    extra_dn: Vec<(DnType, String)>,
    san_uris: Vec<String>,
    san_dns: Vec<String>,
    san_ips: Vec<IpAddr>,
    not_before: SystemTime,
    not_after: SystemTime,
    ekus: Vec<ExtendedKeyUsagePurpose>,
    is_ca: bool,
    key_kind: KeyKind,
    key_pem: Option<String>,
    public_key: Option<Vec<u8>>,
    serial: Option<Vec<u8>>,
    custom: Vec<CustomExtension>,
    crl_distribution_points: Vec<String>,
}

/// Starts a self-signed leaf (no CA behind it), e.g. an attacker's own certificate copying a registered caller's
/// subject and serial.
pub fn self_signed_client() -> ClientCertBuilder<'static> {
    ClientCertBuilder::new(None)
}

impl<'a> ClientCertBuilder<'a> {
    pub(super) fn new(ca: Option<&'a TestCa>) -> Self {
        let now = SystemTime::now();
        ClientCertBuilder {
            ca,
            cn: Some("client".into()),
            extra_dn: Vec::new(),
            san_uris: Vec::new(),
            san_dns: Vec::new(),
            san_ips: Vec::new(),
            not_before: now - Duration::from_secs(3600),
            not_after: now + Duration::from_secs(86_400),
            ekus: vec![ExtendedKeyUsagePurpose::ClientAuth],
            is_ca: false,
            key_kind: KeyKind::EcdsaP256,
            key_pem: None,
            public_key: None,
            serial: None,
            custom: Vec::new(),
            crl_distribution_points: Vec::new(),
        }
    }

    /// Subject CN (`None` leaves the subject without a CN).
    pub fn cn(mut self, cn: impl Into<String>) -> Self {
        self.cn = Some(cn.into());
        self
    }
    /// No CN in the subject (an O attribute keeps the subject non-empty).
    pub fn no_cn(mut self) -> Self {
        self.cn = None;
        self
    }
    /// Adds an organisation (O) to the subject, before the CN.
    pub fn organization(self, organization: impl Into<String>) -> Self {
        self.subject_attr(DnType::OrganizationName, organization)
    }
    /// Adds a subject attribute besides the CN (e.g. `DnType::OrganizationName`).
    pub fn subject_attr(mut self, ty: DnType, value: impl Into<String>) -> Self {
        self.extra_dn.push((ty, value.into()));
        self
    }
    /// Adds a URI SAN.
    pub fn san_uri(mut self, uri: impl Into<String>) -> Self {
        self.san_uris.push(uri.into());
        self
    }
    /// Adds a DNS SAN.
    pub fn san_dns(mut self, name: impl Into<String>) -> Self {
        self.san_dns.push(name.into());
        self
    }
    /// Adds an IP address SAN (e.g. 127.0.0.1 for a server on loopback).
    pub fn san_ip(mut self, ip: impl Into<IpAddr>) -> Self {
        self.san_ips.push(ip.into());
        self
    }
    /// Sets the validity window.
    pub fn validity(mut self, not_before: SystemTime, not_after: SystemTime) -> Self {
        self.not_before = not_before;
        self.not_after = not_after;
        self
    }
    /// With `false`, the leaf carries EKU serverAuth only (an EKU extension without clientAuth).
    pub fn client_auth(mut self, yes: bool) -> Self {
        self.ekus =
            if yes { vec![ExtendedKeyUsagePurpose::ClientAuth] } else { vec![ExtendedKeyUsagePurpose::ServerAuth] };
        self
    }
    /// Sets the EKU list exactly (empty: no EKU extension at all).
    pub fn ekus(mut self, ekus: Vec<ExtendedKeyUsagePurpose>) -> Self {
        self.ekus = ekus;
        self
    }
    /// Marks the leaf as a CA (basicConstraints CA=true, keyCertSign).
    pub fn is_ca(mut self, yes: bool) -> Self {
        self.is_ca = yes;
        self
    }
    /// Key algorithm of the leaf.
    pub fn key(mut self, kind: KeyKind) -> Self {
        self.key_kind = kind;
        self
    }
    /// Reuses an existing PKCS#8 key (PEM) instead of generating one, e.g. to re-issue with the same SPKI.
    pub fn key_pem(mut self, pem: impl Into<String>) -> Self {
        self.key_pem = Some(pem.into());
        self
    }
    /// Certifies this public key (a DER SubjectPublicKeyInfo: RSA, or ECDSA on P-256 or P-384) instead of a
    /// generated one, without its private key: how a test presents a key rcgen cannot generate, such as RSA-1024.
    /// The issued certificate's `key_pem` is empty; a CA must sign it.
    pub fn public_key_der(mut self, spki_der: impl Into<Vec<u8>>) -> Self {
        self.public_key = Some(spki_der.into());
        self
    }
    /// Adds a CRL distribution point with this URI (where a relying party finds the CRL that covers it).
    pub fn crl_distribution_point(mut self, uri: impl Into<String>) -> Self {
        self.crl_distribution_points.push(uri.into());
        self
    }
    /// Sets the serial (big-endian bytes).
    pub fn serial(mut self, serial: impl Into<Vec<u8>>) -> Self {
        self.serial = Some(serial.into());
        self
    }
    /// Adds a raw extension (DER content), e.g. a second subjectAltName ([`OID_SUBJECT_ALT_NAME`]) to make a
    /// certificate with duplicate extensions.
    pub fn custom_extension(mut self, oid: &[u64], der_content: Vec<u8>, critical: bool) -> Self {
        let mut ext = CustomExtension::from_oid_content(oid, der_content);
        ext.set_criticality(critical);
        self.custom.push(ext);
        self
    }
    /// Adds a second subjectAltName extension carrying one URI SAN.
    pub fn duplicate_san_uri(self, uri: &str) -> Self {
        let content = general_names_uri(uri);
        self.custom_extension(OID_SUBJECT_ALT_NAME, content, false)
    }

    /// Signs the certificate (with the CA's key, or its own key when self-signed).
    pub fn build(self) -> Result<IssuedCert, PkiError> {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        for (ty, v) in &self.extra_dn {
            dn.push(ty.clone(), v.as_str());
        }
        match &self.cn {
            Some(cn) => dn.push(DnType::CommonName, cn.as_str()),
            None if self.extra_dn.is_empty() => dn.push(DnType::OrganizationName, "no-cn"),
            None => {}
        }
        params.distinguished_name = dn;
        let mut sans = Vec::new();
        for u in &self.san_uris {
            sans.push(SanType::URI(u.as_str().try_into().map_err(|_| PkiError::Invalid(format!("URI SAN {u:?}")))?));
        }
        for d in &self.san_dns {
            sans.push(SanType::DnsName(
                d.as_str().try_into().map_err(|_| PkiError::Invalid(format!("DNS SAN {d:?}")))?,
            ));
        }
        sans.extend(self.san_ips.iter().map(|ip| SanType::IpAddress(*ip)));
        params.subject_alt_names = sans;
        params.not_before = OffsetDateTime::from(self.not_before);
        params.not_after = OffsetDateTime::from(self.not_after);
        params.extended_key_usages = self.ekus;
        if self.is_ca {
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
        } else {
            params.is_ca = IsCa::ExplicitNoCa;
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        }
        let serial = self.serial.unwrap_or_else(random_serial);
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        params.custom_extensions = self.custom;
        params.crl_distribution_points = self
            .crl_distribution_points
            .into_iter()
            .map(|uri| rcgen::CrlDistributionPoint { uris: vec![uri] })
            .collect();
        params.use_authority_key_identifier_extension = self.ca.is_some();

        if let Some(spki) = &self.public_key {
            let foreign = ForeignKey::from_spki(spki)?;
            let ca = self.ca.ok_or_else(|| PkiError::Invalid("a key without its private half needs a CA".into()))?;
            let cert = params.signed_by(&foreign, &ca.issuer())?;
            let der = cert.der().to_vec();
            return Ok(IssuedCert {
                pem: cert.pem(),
                cert_sha256: Sha256::digest(&der).into(),
                spki_sha256: Sha256::digest(rcgen::PublicKeyData::subject_public_key_info(&foreign)).into(),
                der,
                key_pem: String::new(),
                serial,
            });
        }
        let key = match &self.key_pem {
            Some(pem) => KeyPair::from_pem(pem)?,
            None => self.key_kind.generate()?,
        };
        let cert = match self.ca {
            Some(ca) => params.signed_by(&key, &ca.issuer())?,
            None => params.self_signed(&key)?,
        };
        let der = cert.der().to_vec();
        let spki = rcgen::PublicKeyData::subject_public_key_info(&key);
        Ok(IssuedCert {
            pem: cert.pem(),
            cert_sha256: Sha256::digest(&der).into(),
            spki_sha256: Sha256::digest(&spki).into(),
            der,
            key_pem: key.serialize_pem(),
            serial,
        })
    }
}

/// A public key given as a SubjectPublicKeyInfo, certified without its private key.
struct ForeignKey {
    key: Vec<u8>,
    alg: &'static rcgen::SignatureAlgorithm,
}

impl ForeignKey {
    fn from_spki(der: &[u8]) -> Result<ForeignKey, PkiError> {
        use x509_parser::prelude::FromDer;
        let (rest, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(der)
            .map_err(|e| PkiError::Invalid(format!("public key: {e}")))?;
        if !rest.is_empty() {
            return Err(PkiError::Invalid("public key: trailing bytes".into()));
        }
        let curve = spki.algorithm.parameters.as_ref().and_then(|p| p.as_oid().ok()).map(|o| o.to_id_string());
        let alg = match (spki.algorithm.algorithm.to_id_string().as_str(), curve.as_deref()) {
            ("1.2.840.113549.1.1.1", _) => &rcgen::PKCS_RSA_SHA256,
            ("1.2.840.10045.2.1", Some("1.2.840.10045.3.1.7")) => &rcgen::PKCS_ECDSA_P256_SHA256,
            ("1.2.840.10045.2.1", Some("1.3.132.0.34")) => &rcgen::PKCS_ECDSA_P384_SHA384,
            (other, _) => return Err(PkiError::Invalid(format!("public key: unsupported algorithm {other}"))),
        };
        Ok(ForeignKey { key: spki.subject_public_key.data.to_vec(), alg })
    }
}

impl rcgen::PublicKeyData for ForeignKey {
    fn der_bytes(&self) -> &[u8] {
        &self.key
    }
    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        self.alg
    }
}
