//! One warm authorizer decision, for the mTLS path and the JWT path, with the decision cache off (full
//! verification: PEM parse, chain, CRL lookup, identity rules / JWS signature, claims) and on (a repeat request),
//! next to the floor a full decision cannot go below: one bare signature verification of the same kind
//! (`baseline/*`), with the crypto provider webpki and jsonwebtoken use (aws-lc-rs), measured in the same run.
//!
//! The targets are ratios: a first-sight mTLS decision with a P-256 CA at most 1.3 times one bare P-256
//! verification, an RS256 JWT decision at most 1.4 times one bare RSA-2048 verification. After criterion's
//! figures the run prints both ratios measured in alternating short rounds (decision, bare verification, decision,
//! …; median of the rounds), so a machine whose load changes during the run slows both sides alike.
//!
//! `answer/*` is what the context MAC adds to every Allow: `answer/mac_sign` the signing alone (one HMAC-SHA256 over
//! the contract fields, API id, stage and expiry, and its base64), `answer/allow_cache_hit` the whole handler on a
//! cached mTLS decision (key ring read, signing, the answer, its log line and metrics) for scale.
//!
//! Run: `cargo bench -p tb-authorizer --bench decision` (`-- ratio` for the ratios alone)

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use criterion::{criterion_group, Criterion};
use tb_authorizer::{build, handle_request, App, Authorizer, Config, Deps, Presented, Trust, TrustSources};
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

/// The authorizer's decision core of [`app`].
fn authorizer(rt: &tokio::runtime::Runtime, cache: bool, key: &PartnerKey, ca: &TestCa) -> Authorizer {
    app(rt, cache, key, ca).authorizer
}

/// The authorizer built as the Lambda builds it (its configuration reader and builder), with in-memory trust material,
/// JWKS and context keys, and the decision cache on or off.
fn app(rt: &tokio::runtime::Runtime, cache: bool, key: &PartnerKey, ca: &TestCa) -> App {
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
        context_keys: tb_devkit::fixtures::context_keys(),
    };
    rt.block_on(build(&cfg, deps)).expect("authorizer")
}

/// What signing adds to each Allow.
fn answers(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    use tb_shared::context::{sign, ApiBinding, AuthMethod, CallerContext};
    let keys = tb_devkit::fixtures::context_key_set();
    let context = CallerContext {
        caller_id: tb_shared::ids::CallerId::try_from("order-processing").expect("caller id"),
        auth_method: AuthMethod::Mtls,
        credential_fingerprint: "0123456789abcdef".into(),
        policy_version: "0123456789abcdef".into(),
    };
    let api = ApiBinding { api_id: "a1b2c3d4e5".into(), stage: "prod".into() };
    let ttl = Duration::from_secs(300);
    c.bench_function("answer/mac_sign", |b| {
        b.iter(|| sign(std::hint::black_box(&context), &api, &keys, SystemTime::now(), ttl))
    });

    let now = SystemTime::now();
    let ca = TestCa::root_with("Bench answer Root CA", KeyKind::EcdsaP256).expect("ca");
    let leaf = leaf_of(&ca, now);
    let app = app(rt, true, &PartnerKey::ec_p256("k3").expect("ec"), &ca);
    let event = tb_devkit::events::authorizer_mtls_event(&leaf.pem);
    let answer = rt.block_on(handle_request(&app, &event, now)).expect("an Allow");
    assert!(answer.context.contains_key(tb_shared::context::KEY_MAC), "{answer:?}");
    c.bench_function("answer/allow_cache_hit", |b| b.iter(|| rt.block_on(handle_request(&app, &event, now))));
}

/// One bare signature verification through webpki's own aws-lc-rs algorithm objects: key parsing and the
/// verification itself, nothing else (no certificate, no JOSE). A full first-sight decision verifies one signature
/// of this kind (the leaf's by its P-256 CA; the RS256 token's by an RSA-2048 key), so these are the floors the
/// decision benches are compared with.
fn bare_verification(kind: KeyKind) -> impl Fn() -> bool {
    use rcgen::{PublicKeyData, SigningKey};
    use rustls_pki_types::SignatureVerificationAlgorithm;

    let alg: &'static dyn SignatureVerificationAlgorithm = match kind {
        KeyKind::Rsa2048 => webpki::aws_lc_rs::RSA_PKCS1_2048_8192_SHA256,
        _ => webpki::aws_lc_rs::ECDSA_P256_SHA256,
    };
    let msg = vec![0x5au8; 400]; // about the size of a leaf's TBSCertificate or a JWS signing input
    let key = kind.generate().expect("key");
    let sig = key.sign(&msg).expect("sign");
    let public = key.der_bytes().to_vec();
    assert!(alg.verify_signature(&public, &msg, &sig).is_ok(), "the baseline signature verifies");
    move || alg.verify_signature(std::hint::black_box(&public), &msg, &sig).is_ok()
}

fn baselines(c: &mut Criterion) {
    for (label, kind) in [("p256_verify", KeyKind::EcdsaP256), ("rsa2048_verify", KeyKind::Rsa2048)] {
        let verify = bare_verification(kind);
        c.bench_function(&format!("baseline/{label}"), |b| b.iter(&verify));
    }
}

fn leaf_of(ca: &TestCa, now: SystemTime) -> tb_devkit::pki::IssuedCert {
    ca.issue_client()
        .cn("order-processing")
        .san_uri("spiffe://example.internal/order-processing")
        .validity(now - Duration::from_secs(60), now + Duration::from_secs(86_400))
        .build()
        .expect("leaf")
}

fn bench(c: &mut Criterion) {
    baselines(c);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    answers(c, &rt);
    let now = SystemTime::now();
    let partner = PartnerKey::rsa("k1").expect("rsa");
    // The CA's key type sets the cost of a full mTLS decision: the leaf's signature is checked with it (the CRL's
    // was checked once, when it was loaded).
    for (label, kind) in [("p256", KeyKind::EcdsaP256), ("rsa2048", KeyKind::Rsa2048)] {
        let ca = TestCa::root_with(&format!("Bench {label} Root CA"), kind).expect("ca");
        let leaf = leaf_of(&ca, now);
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
/// Whether the command line's filter (criterion's positional argument, if any) selects `name`.
fn selected(name: &str) -> bool {
    let mut args = std::env::args().skip(1).peekable();
    let mut filter = None;
    while let Some(a) = args.next() {
        if a == "--list" || a == "--profile-time" {
            return false;
        }
        if a.starts_with("--") {
            // flags with a value
            if matches!(a.as_str(), "--save-baseline" | "--baseline" | "--load-baseline" | "--output-format") {
                args.next();
            }
        } else {
            filter = Some(a);
        }
    }
    filter.is_none_or(|f| name.contains(&f))
}

/// Median over alternating rounds of `rounds` × `n` calls: the ratio of a decision's time to a bare
/// verification's, with both per-call times of the median round.
fn alternating_ratio(mut decision: impl FnMut(), verify: &dyn Fn() -> bool) -> (f64, Duration, Duration) {
    const ROUNDS: usize = 41;
    const N: u32 = 200;
    let mut rounds: Vec<(f64, Duration, Duration)> = (0..ROUNDS)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..N {
                decision();
            }
            let d = t.elapsed() / N;
            let t = Instant::now();
            for _ in 0..N {
                assert!(verify());
            }
            let b = t.elapsed() / N;
            (d.as_secs_f64() / b.as_secs_f64(), d, b)
        })
        .collect();
    rounds.sort_by(|a, b| a.0.total_cmp(&b.0));
    rounds[ROUNDS / 2]
}

/// The two targets, measured as ratios in the same process and the same minutes as their floors.
fn ratios() {
    if !selected("ratio/") {
        return;
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let now = SystemTime::now();
    let partner = PartnerKey::rsa("k1").expect("rsa");
    let ca = TestCa::root_with("Ratio p256 Root CA", KeyKind::EcdsaP256).expect("ca");
    let leaf = leaf_of(&ca, now);
    let auth = authorizer(&rt, false, &partner, &ca);
    let token =
        partner.token(&standard_claims("https://idp.partner.example", "partner-sync", "token-broker")).expect("token");
    let cert = Presented { client_cert_pem: Some(&leaf.pem), bearer: None };
    let jwt = Presented { client_cert_pem: None, bearer: Some(&token) };
    for p in [cert, jwt] {
        let (d, info) = rt.block_on(auth.decide(p, now));
        assert!(matches!(d, tb_authorizer::Decision::Allow(_)) && !info.cache_hit, "{d:?}");
    }
    let cases: [(&str, Presented<'_>, KeyKind, f64); 2] = [
        ("mtls_p256_full/p256_verify", cert, KeyKind::EcdsaP256, 1.3),
        ("jwt_RS256_full/rsa2048_verify", jwt, KeyKind::Rsa2048, 1.4),
    ];
    for (label, presented, kind, target) in cases {
        let verify = bare_verification(kind);
        let (ratio, d, b) = alternating_ratio(
            || {
                rt.block_on(auth.decide(presented, now));
            },
            &verify,
        );
        let verdict = if ratio <= target { "met" } else { "NOT MET" };
        println!(
            "ratio/{label}: {ratio:.2} (decision {:.1} µs, bare verification {:.1} µs; target {target}: {verdict})",
            d.as_secs_f64() * 1e6,
            b.as_secs_f64() * 1e6
        );
    }
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    ratios();
}
