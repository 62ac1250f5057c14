//! Rotation of the truststore and CRL objects: after the verifier's refresh, decisions follow the new objects (a
//! newly revoked certificate is refused, a certificate from a newly added CA accepted, one from a removed CA
//! refused), and a broken upload or an outage keeps the last good material. Runs against in-memory sources and
//! against S3 in moto (`scripts/with-moto.sh cargo test -p tb-authorizer --test mtls_rotation`).

#[path = "common/mtls_fixture.rs"]
mod fixture;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fixture::*;
use tb_authorizer::{CertError, CertVerifier, MtlsConfig, MtlsError};
use tb_authorizer::{MemoryObjectSource, ObjectSource, S3ObjectSource};
use tb_devkit::pki::{pem_bundle, TestCa};
use tb_shared::policy::Policy;

/// Where the test writes the two objects, as an operator would.
enum Store {
    Memory { truststore: MemoryObjectSource, crls: MemoryObjectSource },
    S3 { client: aws_sdk_s3::Client, bucket: String },
}

const TRUSTSTORE_KEY: &str = "mtls/truststore.pem";
const CRL_KEY: &str = "mtls/crls.pem";

impl Store {
    async fn put(&self, key: &str, body: String) {
        match self {
            Store::Memory { truststore, crls } => {
                if key == TRUSTSTORE_KEY { truststore } else { crls }.set(body);
            }
            Store::S3 { client, bucket } => {
                client
                    .put_object()
                    .bucket(bucket)
                    .key(key)
                    .body(aws_sdk_s3::primitives::ByteStream::from(body.into_bytes()))
                    .send()
                    .await
                    .expect("put_object");
            }
        }
    }

    fn sources(&self) -> (Arc<dyn ObjectSource>, Arc<dyn ObjectSource>) {
        match self {
            Store::Memory { truststore, crls } => (Arc::new(truststore.clone()), Arc::new(crls.clone())),
            Store::S3 { client, bucket } => (
                Arc::new(S3ObjectSource::new(client.clone(), bucket.clone(), TRUSTSTORE_KEY)),
                Arc::new(S3ObjectSource::new(client.clone(), bucket.clone(), CRL_KEY)),
            ),
        }
    }
}

fn policy() -> Policy {
    Policy::from_bytes("policy.yaml", policy_yaml(&"0".repeat(64), &"1".repeat(64)).as_bytes()).unwrap()
}

fn outcome(v: &CertVerifier, policy: &Policy, pem: &str) -> Outcome {
    outcome_of(&v.verify_pem(pem, SystemTime::now()), policy)
}

/// The operator's story, identical for every store.
async fn rotation_scenario(store: Store) {
    let policy = policy();
    let ca_a = TestCa::root("Rotation CA A").unwrap();
    let ca_b = TestCa::root("Rotation CA B").unwrap();
    let a1 = ca_a.issue_client().san_uri(ORDERS_URI).build().unwrap();
    let a2 = ca_a.issue_client().san_uri(ORDERS_URI).build().unwrap();
    let b1 = ca_b.issue_client().san_dns(REPORTING_DNS).build().unwrap();

    let crl_a_before = fresh_crl(&ca_a, &[]);
    store.put(TRUSTSTORE_KEY, ca_a.cert_pem().to_owned()).await;
    store.put(CRL_KEY, crl_a_before.pem.clone()).await;
    let (ts_src, crl_src) = store.sources();
    let cfg = MtlsConfig { refresh_interval: Duration::ZERO, ..MtlsConfig::default() };
    let v = CertVerifier::new(ts_src, Some(crl_src), cfg);
    assert_eq!(v.refresh().await, Ok(true));
    let g0 = v.generation();

    assert_eq!(outcome(&v, &policy, &a1.pem), Outcome::Allow("orders".into()));
    assert_eq!(v.verify_pem(&b1.pem, SystemTime::now()).err(), Some(CertError::UntrustedIssuer));

    // nothing changed: a conditional fetch, no new generation
    assert_eq!(v.refresh_if_due(SystemTime::now()).await, Ok(false));
    assert_eq!(v.generation(), g0);

    // add CA B, revoke a1
    store.put(TRUSTSTORE_KEY, pem_bundle(&[ca_a.cert_pem(), ca_b.cert_pem()])).await;
    store.put(CRL_KEY, pem_bundle(&[&fresh_crl(&ca_a, &[&a1.serial]).pem, &fresh_crl(&ca_b, &[]).pem])).await;
    assert_eq!(v.refresh_if_due(SystemTime::now()).await, Ok(true), "changed material must be reported");
    assert!(v.generation() > g0);
    assert_eq!(v.verify_pem(&a1.pem, SystemTime::now()).err(), Some(CertError::Revoked));
    assert_eq!(outcome(&v, &policy, &a1.pem), Outcome::Deny);
    assert_eq!(outcome(&v, &policy, &a2.pem), Outcome::Allow("orders".into()));
    assert_eq!(outcome(&v, &policy, &b1.pem), Outcome::Allow("reporting".into()));

    // the CRL object rolled back to A's CRL from before the revocation (still fresh, genuinely signed): the
    // object changed, but A's older CRL is refused and a1 stays revoked
    let g = v.generation();
    store.put(CRL_KEY, pem_bundle(&[&crl_a_before.pem, &fresh_crl(&ca_b, &[]).pem])).await;
    assert_eq!(v.refresh_if_due(SystemTime::now()).await, Ok(true));
    assert!(v.generation() > g);
    assert_eq!(v.verify_pem(&a1.pem, SystemTime::now()).err(), Some(CertError::Revoked));
    assert_eq!(v.crls_in_use(), 2);
    assert_eq!(outcome(&v, &policy, &a2.pem), Outcome::Allow("orders".into()));

    // remove CA A
    store.put(TRUSTSTORE_KEY, ca_b.cert_pem().to_owned()).await;
    store.put(CRL_KEY, fresh_crl(&ca_b, &[]).pem).await;
    assert_eq!(v.refresh_if_due(SystemTime::now()).await, Ok(true));
    assert_eq!(v.verify_pem(&a2.pem, SystemTime::now()).err(), Some(CertError::UntrustedIssuer));
    assert_eq!(outcome(&v, &policy, &a2.pem), Outcome::Unauthorized);
    assert_eq!(outcome(&v, &policy, &b1.pem), Outcome::Allow("reporting".into()));

    // a broken upload is refused and the last good truststore stays in use
    let g = v.generation();
    store.put(TRUSTSTORE_KEY, "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n".into()).await;
    assert_eq!(v.refresh_if_due(SystemTime::now()).await, Ok(false));
    assert!(matches!(v.refresh().await, Err(MtlsError::TruststoreInvalid(_))));
    assert_eq!(v.generation(), g);
    assert_eq!(outcome(&v, &policy, &b1.pem), Outcome::Allow("reporting".into()));
    assert_eq!(outcome(&v, &policy, &a2.pem), Outcome::Unauthorized);
}

#[tokio::test]
async fn rotation_with_memory_sources() {
    rotation_scenario(Store::Memory { truststore: MemoryObjectSource::default(), crls: MemoryObjectSource::default() })
        .await;
}

#[tokio::test]
async fn rotation_with_s3_in_moto() {
    // Needs moto's S3: run through `scripts/with-moto.sh cargo test -p tb-authorizer --test mtls_rotation`.
    let client = tb_devkit::moto::s3_client(&tb_devkit::moto::sdk_config().await);
    let bucket = tb_devkit::moto::unique("tb-mtls-rotation");
    tb_devkit::moto::create_bucket(&client, &bucket).await;
    rotation_scenario(Store::S3 { client, bucket }).await;
}

#[tokio::test]
async fn refresh_waits_for_the_interval() {
    let ca_a = TestCa::root("Interval CA A").unwrap();
    let ca_b = TestCa::root("Interval CA B").unwrap();
    let b1 = ca_b.issue_client().san_dns(REPORTING_DNS).build().unwrap();
    let ts = MemoryObjectSource::new(ca_a.cert_pem());
    let v = CertVerifier::new(Arc::new(ts.clone()), None, MtlsConfig::default());
    v.refresh().await.unwrap();
    let fetches = ts.fetches();
    ts.set(pem_bundle(&[ca_a.cert_pem(), ca_b.cert_pem()]));
    // within the 60 s interval: no fetch, old material
    assert_eq!(v.refresh_if_due(SystemTime::now()).await, Ok(false));
    assert_eq!(ts.fetches(), fetches);
    assert_eq!(v.verify_pem(&b1.pem, SystemTime::now()).err(), Some(CertError::UntrustedIssuer));
    // an explicit refresh picks it up at once
    assert_eq!(v.refresh().await, Ok(true));
    assert!(v.verify_pem(&b1.pem, SystemTime::now()).is_ok());
}

/// Requests running during a swap see either the old or the new material, never a mix or an empty set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swaps_are_atomic_under_concurrent_verification() {
    let ca_a = TestCa::root("Swap CA A").unwrap();
    let ca_b = TestCa::root("Swap CA B").unwrap();
    let b1 = ca_b.issue_client().san_dns(REPORTING_DNS).build().unwrap();
    let ts = MemoryObjectSource::new(ca_b.cert_pem());
    let v = Arc::new(CertVerifier::new(Arc::new(ts.clone()), None, MtlsConfig::default()));
    v.refresh().await.unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..2 {
        let (v, stop, pem) = (Arc::clone(&v), Arc::clone(&stop), b1.pem.clone());
        workers.push(tokio::task::spawn_blocking(move || {
            // At least one verification per worker even if the swaps finish before it is scheduled (loaded CI).
            let mut n = 0u32;
            loop {
                assert!(v.verify_pem(&pem, SystemTime::now()).is_ok(), "B is trusted in every version");
                n += 1;
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
            }
            n
        }));
    }
    for i in 0..40 {
        let bundle = if i % 2 == 0 {
            pem_bundle(&[ca_a.cert_pem(), ca_b.cert_pem()])
        } else {
            pem_bundle(&[ca_b.cert_pem(), ca_a.cert_pem()])
        };
        ts.set(bundle);
        assert_eq!(v.refresh().await, Ok(true));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in workers {
        assert!(w.await.unwrap() > 0);
    }
}
