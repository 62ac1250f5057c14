//! Shared set-up of the mTLS tests: a generated PKI (root + intermediate), a policy with one caller per
//! certificate identity rule, and a verifier reading truststore and CRLs from in-memory sources.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tb_authorizer::MemoryObjectSource;
use tb_authorizer::{identify, CertError, CertVerifier, IdentifyError, MtlsConfig};
use tb_devkit::pki::{pem_bundle, IssuedCert, TestCa, TestCrl};
use tb_shared::policy::Policy;

pub const ROOT_CN: &str = "Token Broker Test Root CA";
pub const INTER_CN: &str = "Token Broker Test Issuing CA";
pub const ORDERS_URI: &str = "spiffe://example.internal/ns/orders/sa/order-processing";
pub const REPORTING_DNS: &str = "reporting.svc.example.internal";
pub const LEGACY_CN: &str = "legacy-batch";

/// What the handler answers for a verification + identification result (the status mapping of docs/design.md, "What
/// each input gets").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Verified and mapped to this caller id.
    Allow(String),
    /// 403: revoked, or verified but no single caller.
    Deny,
    /// 401: no valid credential.
    Unauthorized,
}

pub fn outcome_of(verified: &Result<tb_authorizer::VerifiedCert, CertError>, policy: &Policy) -> Outcome {
    match verified {
        Err(e) if e.is_revoked() => Outcome::Deny,
        Err(_) => Outcome::Unauthorized,
        Ok(v) => match identify(v, policy) {
            Ok(c) => Outcome::Allow(c.id.to_string()),
            Err(_) => Outcome::Deny,
        },
    }
}

pub fn hours(h: u64) -> Duration {
    Duration::from_secs(h * 3600)
}

pub fn fresh_crl(ca: &TestCa, revoked: &[&[u8]]) -> TestCrl {
    let now = SystemTime::now();
    ca.crl(revoked, now - hours(1), now + hours(1)).unwrap()
}

pub struct Fixture {
    pub root: TestCa,
    pub inter: TestCa,
    /// Leaf whose whole-certificate hash is pinned for caller `pinned-cert`.
    pub pinned_cert: IssuedCert,
    /// Leaf whose public-key hash is pinned for caller `pinned-key`.
    pub pinned_key: IssuedCert,
    pub policy: Policy,
    pub truststore: MemoryObjectSource,
    pub crls: MemoryObjectSource,
    pub verifier: CertVerifier,
}

pub fn policy_yaml(pinned_cert_hex: &str, pinned_key_hex: &str) -> String {
    let caller = |id: &str, identity: &str| {
        format!(
            "  - id: {id}\n    identities: [{identity}]\n    cognito_client: {id}\n    allowed_scopes: [api/read]\n    max_token_lifetime_seconds: 3600\n    quotas: unlimited\n"
        )
    };
    let mut doc = String::from("version: 1\ncallers:\n");
    doc += &caller("orders", &format!("{{ type: san_uri, value: \"{ORDERS_URI}\" }}"));
    doc += &caller("reporting", &format!("{{ type: san_dns, value: \"{REPORTING_DNS}\" }}"));
    doc += &caller("legacy", &format!("{{ type: subject_cn, cn: \"{LEGACY_CN}\", issuer_cn: \"{ROOT_CN}\" }}"));
    doc += &caller("pinned-cert", &format!("{{ type: cert_sha256, value: \"{pinned_cert_hex}\" }}"));
    doc += &caller("pinned-key", &format!("{{ type: spki_sha256, value: \"{pinned_key_hex}\" }}"));
    doc
}

impl Fixture {
    /// Root and intermediate in the truststore, an empty fresh CRL for each, verifier loaded.
    pub async fn new() -> Fixture {
        Self::with_config(MtlsConfig::default()).await
    }

    pub async fn with_config(cfg: MtlsConfig) -> Fixture {
        let root = TestCa::root(ROOT_CN).unwrap();
        let inter = root.intermediate(INTER_CN).unwrap();
        let pinned_cert = root.issue_client().cn("pinned-by-cert").build().unwrap();
        let pinned_key = root.issue_client().cn("pinned-by-key").build().unwrap();
        let policy = Policy::from_bytes(
            "policy.yaml",
            policy_yaml(&pinned_cert.cert_sha256_hex(), &pinned_key.spki_sha256_hex()).as_bytes(),
        )
        .unwrap();
        let truststore = MemoryObjectSource::new(inter.chain_bundle_pem());
        let crls = MemoryObjectSource::new(pem_bundle(&[&fresh_crl(&root, &[]).pem, &fresh_crl(&inter, &[]).pem]));
        let verifier = CertVerifier::new(Arc::new(truststore.clone()), Some(Arc::new(crls.clone())), cfg);
        assert!(verifier.refresh().await.unwrap(), "cold start must load material");
        Fixture { root, inter, pinned_cert, pinned_key, policy, truststore, crls, verifier }
    }

    pub fn verify(&self, pem: &str) -> Result<tb_authorizer::VerifiedCert, CertError> {
        self.verifier.verify_pem(pem, SystemTime::now())
    }

    pub fn outcome(&self, pem: &str) -> Outcome {
        outcome_of(&self.verify(pem), &self.policy)
    }

    pub fn identify(&self, pem: &str) -> Result<String, IdentifyError> {
        let v = self.verify(pem).expect("certificate must verify");
        identify(&v, &self.policy).map(|c| c.id.to_string())
    }

    /// Replaces the CRL object and reloads.
    pub async fn set_crls(&self, crls: &[&TestCrl]) {
        let pems: Vec<&str> = crls.iter().map(|c| c.pem.as_str()).collect();
        self.crls.set(pem_bundle(&pems));
        self.verifier.refresh().await.unwrap();
    }
}
