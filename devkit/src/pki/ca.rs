//! CAs with the properties the attack suites vary: path-length and name constraints, an EKU on the CA, a CA flag
//! that is missing, the key type, and a subject organisation of their own (two CAs with one CN).

use rcgen::{GeneralSubtree, NameConstraints};

use super::*;

/// Builder for a CA; see [`TestCa::sub_ca`] and [`TestCa::root_builder`].
pub struct CaBuilder<'a> {
    parent: Option<&'a TestCa>,
    organization: String,
    cn: String,
    path_len: Option<u8>,
    permitted_dns: Vec<String>,
    excluded_dns: Vec<String>,
    ekus: Vec<ExtendedKeyUsagePurpose>,
    is_ca: bool,
    key_kind: KeyKind,
    key_usages: Option<Vec<KeyUsagePurpose>>,
}

impl TestCa {
    /// A second certificate for this CA (same subject, same key) issued by `other`: a cross-certificate, which
    /// gives the CA's certificates a second path to another root (as in a root rollover). The CA keeps signing as
    /// before; only the certificate is new.
    pub fn cross_certificate(&self, other: &TestCa) -> Result<IssuedCert, PkiError> {
        let mut params = self.params.clone();
        let serial = random_serial();
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&self.key, &other.issuer())?;
        let der = cert.der().to_vec();
        Ok(IssuedCert {
            pem: cert.pem(),
            cert_sha256: Sha256::digest(&der).into(),
            spki_sha256: Sha256::digest(rcgen::PublicKeyData::subject_public_key_info(&self.key)).into(),
            der,
            key_pem: String::new(),
            serial,
        })
    }

    /// Starts a CA signed by this one. Defaults: the test PKI's organisation, no path-length constraint, no name
    /// constraints, no EKU, keyCertSign + cRLSign + digitalSignature, ECDSA P-256.
    pub fn sub_ca(&self, cn: &str) -> CaBuilder<'_> {
        CaBuilder::new(Some(self), cn)
    }

    /// Starts a self-signed root CA with the same options as [`TestCa::sub_ca`].
    pub fn root_builder(cn: &str) -> CaBuilder<'static> {
        CaBuilder::new(None, cn)
    }
}

impl<'a> CaBuilder<'a> {
    fn new(parent: Option<&'a TestCa>, cn: &str) -> Self {
        CaBuilder {
            parent,
            organization: TEST_ORG.to_owned(),
            cn: cn.to_owned(),
            path_len: None,
            permitted_dns: Vec::new(),
            excluded_dns: Vec::new(),
            ekus: Vec::new(),
            is_ca: true,
            key_kind: KeyKind::EcdsaP256,
            key_usages: None,
        }
    }

    /// The subject's organisation (O), e.g. to make two CAs whose subjects differ but whose CN is the same.
    pub fn organization(mut self, organization: impl Into<String>) -> Self {
        self.organization = organization.into();
        self
    }
    /// basicConstraints pathLenConstraint (`Some(0)`: it may issue only leaves).
    pub fn path_len(mut self, n: Option<u8>) -> Self {
        self.path_len = n;
        self
    }
    /// Adds a permitted DNS subtree to the name constraints (e.g. `allowed.example`).
    pub fn permitted_dns(mut self, subtree: impl Into<String>) -> Self {
        self.permitted_dns.push(subtree.into());
        self
    }
    /// Adds an excluded DNS subtree to the name constraints.
    pub fn excluded_dns(mut self, subtree: impl Into<String>) -> Self {
        self.excluded_dns.push(subtree.into());
        self
    }
    /// An extended key usage extension on the CA itself (empty: none), which constrains what it may issue.
    pub fn ekus(mut self, ekus: Vec<ExtendedKeyUsagePurpose>) -> Self {
        self.ekus = ekus;
        self
    }
    /// basicConstraints CA=false while keeping keyCertSign: a certificate that signs others although it is no CA.
    pub fn not_ca(mut self) -> Self {
        self.is_ca = false;
        self
    }
    /// Key algorithm of the CA.
    pub fn key(mut self, kind: KeyKind) -> Self {
        self.key_kind = kind;
        self
    }
    /// The keyUsage bits exactly (e.g. without cRLSign).
    pub fn key_usages(mut self, usages: Vec<KeyUsagePurpose>) -> Self {
        self.key_usages = Some(usages);
        self
    }

    /// Signs the CA certificate (with the parent's key, or its own for a root).
    pub fn build(self) -> Result<TestCa, PkiError> {
        let mut params = ca_params(&self.organization, &self.cn, self.path_len);
        if !self.is_ca {
            params.is_ca = IsCa::ExplicitNoCa;
        }
        if !self.permitted_dns.is_empty() || !self.excluded_dns.is_empty() {
            params.name_constraints = Some(NameConstraints {
                permitted_subtrees: self.permitted_dns.into_iter().map(GeneralSubtree::DnsName).collect(),
                excluded_subtrees: self.excluded_dns.into_iter().map(GeneralSubtree::DnsName).collect(),
            });
        }
        params.extended_key_usages = self.ekus;
        if let Some(usages) = self.key_usages {
            params.key_usages = usages;
        }
        match self.parent {
            Some(parent) => {
                let key = self.key_kind.generate()?;
                let cert = params.signed_by(&key, &parent.issuer())?;
                let mut parents_pem = vec![parent.pem.clone()];
                parents_pem.extend(parent.parents_pem.iter().cloned());
                Ok(TestCa { pem: cert.pem(), der: cert.der().clone(), params, key, parents_pem })
            }
            None => TestCa::self_signed(params, self.key_kind),
        }
    }
}
