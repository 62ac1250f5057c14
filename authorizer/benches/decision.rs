//! One warm authorizer decision, for the mTLS path and the JWT path, with the decision cache off (full
//! verification: PEM parse, chain, CRL, identity rules / JWS signature, claims) and on (a repeat request), next to
//! the floor a full decision cannot go below: one bare signature verification of the same kind (`baseline/*`), with
//! the crypto provider webpki and jsonwebtoken use (aws-lc-rs), measured in the same run so the ratios hold on any
//! machine.
//!
//! Run: `cargo bench -p tb-authorizer --bench decision`

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use criterion::{criterion_group, criterion_main, Criterion};
use tb_authorizer::{build, Authorizer, Config, Deps, Presented, Trust, TrustSources};
use tb_authorizer::{MemoryJwksFetcher, MemoryObjectSource};
use tb_devkit::jwt::{standard_claims, PartnerKey};
use tb_devkit::pki::{KeyKind, TestCa};
use tb_shared::clock::Clock;
use tb_shared::env::Env;
use tb_shared::telemetry::MetricsSink;

const JWKS_URL: &str = "https://idp.partner.example/jwks.json";

fn policy() -> String {
    let yaml = format!(
        r#"
version: 1
callers:
  - id: order-processing
    identities: [{{ type: san_uri, value: "spiffe://example.internal/order-processing" }}]
    cognito_client: order-processing
    allowed_scopes: [customer-api/read]
    max_token_lifetime_seconds: 3600
    quotas: unlimited
  - id: partner
    identities: [{{ type: jwt, issuer: "https://idp.partner.example", subject: partner-sync }}]
    cognito_client: partner
    allowed_scopes: [customer-api/read]
    max_token_lifetime_seconds: 3600
    quotas: unlimited
issuers:
  - issuer: https://idp.partner.example
    jwks_url: {JWKS_URL}
    audiences: [token-broker]
    algorithms: [RS256, ES256]
    max_token_age_seconds: 3000
"#
    );
    yaml
}

/// The authorizer built as the Lambda builds it (its configuration reader and builder), with in-memory trust material
/// and JWKS, and the decision cache on or off.
fn authorizer(rt: &tokio::runtime::Runtime, cache: bool, key: &PartnerKey, ca: &TestCa) -> Authorizer {
    let now = SystemTime::now();
    let trust = MemoryObjectSource::new(ca.cert_pem().as_bytes().to_vec());
    let crl = ca.crl(&[], now - Duration::from_secs(60), now + Duration::from_secs(3600)).expect("crl");
    let crls = MemoryObjectSource::new(crl.pem.into_bytes());
    let jwks = MemoryJwksFetcher::default();
    jwks.set(JWKS_URL, key.jwks().to_string().into_bytes());
    let policy = tb_devkit::fixtures::write_policy(&policy());
    let cfg = Config::read(&Env::from_pairs([
        ("POLICY_FILE", policy.path().to_str().expect("utf-8 path")),
        ("TRUST_REFRESH_SECONDS", "3600"),
        ("DECISION_CACHE_TTL_SECONDS", if cache { "60" } else { "0" }),
    ]))
    .expect("config");
    let deps = Deps {
        trust: Trust::Sources(TrustSources { truststore: Arc::new(trust), crls: Some(Arc::new(crls)) }),
        jwks: Arc::new(jwks),
        metrics: MetricsSink::to_writer("Bench", std::io::sink()),
        clock: Clock::system(),
    };
    rt.block_on(build(&cfg, deps)).expect("authorizer").authorizer
}

/// One bare signature verification through webpki's own aws-lc-rs algorithm objects: key parsing and the
/// verification itself, nothing else (no certificate, no JOSE). A full first-sight decision verifies one signature
/// of this kind (the leaf's by its P-256 CA; the RS256 token's by an RSA-2048 key), so these are the floors the
/// decision benches are compared with.
fn baselines(c: &mut Criterion) {
    use rcgen::{PublicKeyData, SigningKey};
    use rustls_pki_types::SignatureVerificationAlgorithm;

    let msg = vec![0x5au8; 400]; // about the size of a leaf's TBSCertificate or a JWS signing input
    let cases: [(&str, tb_devkit::pki::KeyKind, &dyn SignatureVerificationAlgorithm); 2] = [
        ("p256_verify", KeyKind::EcdsaP256, webpki::aws_lc_rs::ECDSA_P256_SHA256),
        ("rsa2048_verify", KeyKind::Rsa2048, webpki::aws_lc_rs::RSA_PKCS1_2048_8192_SHA256),
    ];
    for (label, kind, alg) in cases {
        let key = kind.generate().expect("key");
        let sig = key.sign(&msg).expect("sign");
        let public = key.der_bytes().to_vec();
        alg.verify_signature(&public, &msg, &sig).expect("the baseline signature verifies");
        c.bench_function(&format!("baseline/{label}"), |b| {
            b.iter(|| alg.verify_signature(std::hint::black_box(&public), &msg, &sig))
        });
    }
}

fn bench(c: &mut Criterion) {
    baselines(c);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let now = SystemTime::now();
    let leaf_of = |ca: &TestCa| {
        ca.issue_client()
            .cn("order-processing")
            .san_uri("spiffe://example.internal/order-processing")
            .validity(now - Duration::from_secs(60), now + Duration::from_secs(86_400))
            .build()
            .expect("leaf")
    };
    let partner = PartnerKey::rsa("k1").expect("rsa");
    // The CA's key type sets the cost of a full mTLS decision: the leaf's and the CRL's signatures are checked with it.
    for (label, kind) in [("p256", KeyKind::EcdsaP256), ("rsa2048", KeyKind::Rsa2048)] {
        let ca = TestCa::root_with(&format!("Bench {label} Root CA"), kind).expect("ca");
        let leaf = leaf_of(&ca);
        for cache in [false, true] {
            let auth = authorizer(&rt, cache, &partner, &ca);
            let presented = || Presented { client_cert_pem: Some(&leaf.pem), bearer: None };
            // Warm up: trust material loaded.
            let (d, _) = rt.block_on(auth.decide(presented(), now));
            assert!(matches!(d, tb_authorizer::Decision::Allow(_)), "{d:?}");
            let suffix = if cache { "cache_hit" } else { "full" };
            c.bench_function(&format!("decision/mtls_{label}/{suffix}"), |b| {
                b.iter(|| rt.block_on(auth.decide(presented(), now)))
            });
        }
    }

    let ca = TestCa::root("Bench Root CA").expect("ca");
    for (label, key) in [("RS256", partner), ("ES256", PartnerKey::ec_p256("k2").expect("ec"))] {
        let token =
            key.token(&standard_claims("https://idp.partner.example", "partner-sync", "token-broker")).expect("token");
        for cache in [false, true] {
            let auth = authorizer(&rt, cache, &key, &ca);
            let presented = || Presented { client_cert_pem: None, bearer: Some(&token) };
            // Warm up: JWKS fetched and parsed.
            let (d, _) = rt.block_on(auth.decide(presented(), now));
            assert!(matches!(d, tb_authorizer::Decision::Allow(_)), "{d:?}");
            let suffix = if cache { "cache_hit" } else { "full" };
            c.bench_function(&format!("decision/jwt_{label}/{suffix}"), |b| {
                b.iter(|| rt.block_on(auth.decide(presented(), now)))
            });
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
