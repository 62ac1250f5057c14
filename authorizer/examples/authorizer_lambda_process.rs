//! Process start to ready, memory and invocation round trips of the real `authorizer` release binary under the
//! project's Lambda Runtime API emulator (`tb_devkit::runtime_api`): the figures BENCHMARKS.md records ("Lambda
//! process: start to ready, memory") that the in-process criterion bench (`benches/decision.rs`) cannot give.
//!
//! ```sh
//! export CARGO_TARGET_DIR=$HOME/.cache/token-broker/target
//! cargo build --release -p tb-authorizer --bins
//! scripts/with-moto.sh \
//!   cargo run --release -p tb-authorizer --example authorizer_lambda_process -- --runs 20 --invocations 200
//! ```
//!
//! The function gets what it gets in Lambda: a policy file, the truststore and a CRL (as files here, from S3 in
//! Lambda), the context key set from an SSM SecureString (moto, from `scripts/with-moto.sh`; read once per cold
//! start, so each start includes one SSM read), `LOG_LEVEL=info`. Every Allow is signed. The events cycle through `--certs N` (default 20) distinct client certificates of
//! known callers, four partner JWTs (RS256, the JWKS from a loopback server, fetched on the first JWT of each run),
//! an unknown and a revoked certificate (Deny) and a request without credentials (401): each credential's first
//! use takes the full verification path, its repeats the decision cache, and both are reported apart.
//! Everything reached is on loopback. Nothing is asserted about time; answers are checked so a misconfigured run
//! cannot pass as a fast one.

use std::time::{Duration, SystemTime};

use secrecy::ExposeSecret as _;

use tb_devkit::fixtures::context_key_set;
use tb_devkit::jwt::{standard_claims, JwksServer, PartnerKey};
use tb_devkit::lambda_bench::{load_average, measure, print_report, release_binary, BenchArgs, BenchEvent, Workload};
use tb_devkit::moto::{self, unique};
use tb_devkit::pki::{ClientCertBuilder, IssuedCert, TestCa};
use tb_devkit::runtime_api::Outcome;

const USAGE: &str = "usage: scripts/with-moto.sh cargo run --release -p tb-authorizer --example \
                     authorizer_lambda_process -- [--runs N (20)] [--invocations N (200)] [--certs N (20)]";
/// The region the runtime emulator's environment gives the function; the key parameter is made in the same one.
const REGION: &str = "eu-west-1";
const ISSUER: &str = "https://idp.bench.example";
const PARTNER_SUBJECT: &str = "bench-partner-sync";
const AUDIENCE: &str = "token-broker";
/// Distinct partner tokens per run: enough for first-sight and cached JWT decisions alike.
const JWT_TOKENS: usize = 4;

const ALLOW_MTLS: &str = "mTLS allow";
const ALLOW_JWT: &str = "JWT RS256 allow";
const DENY_MTLS: &str = "mTLS deny (unknown, revoked)";
const NO_CREDENTIALS: &str = "no credentials (401)";

/// Writes `contents` to `name` in `dir` (the policy, truststore and CRL files the function reads at init); returns
/// the path, for the function's environment.
fn write_file(dir: &tempfile::TempDir, name: &str, contents: &str) -> String {
    let p = dir.path().join(name);
    std::fs::write(&p, contents).expect("a temporary file can be written");
    p.to_string_lossy().into_owned()
}

fn client_uri(i: usize) -> String {
    format!("spiffe://example.internal/ns/bench/sa/client-{i:02}")
}

/// One caller per client certificate, matched by SAN URI, plus a partner caller matched by JWT issuer and subject.
fn policy(certs: usize, jwks_url: &str) -> String {
    let mut p = String::from("version: 1\ncallers:\n");
    for i in 0..certs {
        p.push_str(&format!(
            "  - id: bench-client-{i:02}\n    identities: [{{ type: san_uri, value: \"{}\" }}]\n    \
             cognito_client: bench-client-{i:02}\n    allowed_scopes: [customer-api/read]\n    \
             max_token_lifetime_seconds: 3600\n    quotas: unlimited\n",
            client_uri(i)
        ));
    }
    p.push_str(&format!(
        "  - id: bench-partner\n    \
         identities: [{{ type: jwt, issuer: \"{ISSUER}\", subject: {PARTNER_SUBJECT} }}]\n    \
         cognito_client: bench-partner\n    allowed_scopes: [customer-api/read]\n    \
         max_token_lifetime_seconds: 900\n    quotas: unlimited\nissuers:\n  - issuer: {ISSUER}\n    jwks_url: {jwks_url}\n    \
         audiences: [{AUDIENCE}]\n    algorithms: [RS256]\n    max_token_age_seconds: 300\n"
    ));
    p
}

use tb_devkit::events::{
    authorizer_jwt as jwt_event, authorizer_mtls as mtls_event, authorizer_no_credentials as no_credentials_event,
};

/// Whether an answer's context carries the MAC.
fn signed(outcome: &Outcome) -> bool {
    matches!(outcome, Outcome::Response(r) if r["context"][tb_shared::context::KEY_MAC].is_string())
}

/// The effect of the policy statement the authorizer answered with.
fn effect(outcome: &Outcome) -> Result<&str, String> {
    match outcome {
        Outcome::Response(r) => r["policyDocument"]["Statement"][0]["Effect"]
            .as_str()
            .ok_or_else(|| format!("no policy statement in the answer: {r}")),
        Outcome::Error { error_type, error_message } => Err(format!("function error {error_type}: {error_message}")),
    }
}

fn check(ev: &BenchEvent, outcome: &Outcome) -> Result<(), String> {
    match ev.kind {
        ALLOW_MTLS | ALLOW_JWT => match effect(outcome)? {
            "Allow" if signed(outcome) => Ok(()),
            "Allow" => Err("an Allow without a context MAC".into()),
            other => Err(format!("expected Allow, got {other}")),
        },
        DENY_MTLS => match effect(outcome)? {
            "Deny" => Ok(()),
            other => Err(format!("expected Deny, got {other}")),
        },
        _ => match outcome {
            Outcome::Error { error_message, .. } if error_message == "Unauthorized" => Ok(()),
            other => Err(format!("expected the Unauthorized error, got {other:?}")),
        },
    }
}

#[tokio::main]
async fn main() {
    let args = BenchArgs::from_env_args(USAGE, &[("certs", 20)]);
    let bin = release_binary("authorizer", "tb-authorizer");
    let endpoint = moto::try_endpoint().unwrap_or_else(|why| {
        eprintln!("{why}:\n  {USAGE}");
        std::process::exit(2)
    });
    let load_before = load_average();

    // A test PKI: the callers' certificates, one of nobody in the policy, one revoked (listed in the CRL).
    let ca = TestCa::root("Bench Root CA").expect("test CA");
    let now = SystemTime::now();
    let hour = Duration::from_secs(3600);
    let issue = |b: ClientCertBuilder<'_>| -> IssuedCert {
        b.validity(now - hour, now + 24 * hour).build().expect("test client certificate")
    };
    let clients: Vec<IssuedCert> = (0..args.get("certs"))
        .map(|i| issue(ca.issue_client().cn(format!("bench-client-{i:02}")).san_uri(client_uri(i))))
        .collect();
    let stranger = issue(ca.issue_client().cn("nobody").san_uri("spiffe://example.internal/nobody"));
    let revoked = issue(ca.issue_client().cn("bench-client-00-old").san_uri(client_uri(0)));
    let crl = ca.crl(&[revoked.serial.as_slice()], now - hour, now + 24 * hour).expect("test CRL");

    // A partner key whose JWKS a loopback server publishes (the policy allows http only for loopback).
    let partner = PartnerKey::rsa("bench-partner-1").expect("partner RSA key");
    let (jwks, _jwks_task) = JwksServer::start(partner.jwks()).await.expect("JWKS server on loopback");

    // The context key set, as the operator stores it before the first deploy.
    let key_parameter = format!("/token-broker-bench/context-keys/{}", unique("run"));
    let sdk = moto::sdk_config_at(&endpoint, REGION).await;
    moto::put_secure_string(&sdk, &key_parameter, context_key_set().to_document().expose_secret()).await;

    let dir = tempfile::Builder::new().prefix("tb-bench-authorizer-").tempdir().expect("a temporary directory");
    let config = [
        ("POLICY_FILE", write_file(&dir, "policy.yaml", &policy(clients.len(), &jwks.url))),
        ("TRUSTSTORE_URI", write_file(&dir, "truststore.pem", ca.cert_pem())),
        ("CRL_URI", write_file(&dir, "crls.pem", &crl.pem)),
        ("LOG_LEVEL", "info".to_owned()),
        ("CONTEXT_KEY_PARAMETER", key_parameter.clone()),
        // What Lambda's execution role gives the function; here moto's fake keys and its endpoint.
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
        ("AWS_SESSION_TOKEN", "testing".to_owned()),
    ]
    .map(|(k, v)| (k.to_owned(), v))
    .to_vec();

    // Fresh tokens each run (standard claims expire after 300 s); the certificates are the same in every run, as
    // a fresh process has an empty decision cache anyway.
    let mut events = |_run: usize| -> Vec<BenchEvent> {
        let event = |kind, event, cached_on_repeat| BenchEvent { kind, event, cached_on_repeat };
        let mut list: Vec<BenchEvent> = clients.iter().map(|c| event(ALLOW_MTLS, mtls_event(&c.pem), true)).collect();
        for _ in 0..JWT_TOKENS {
            let token = partner.token(&standard_claims(ISSUER, PARTNER_SUBJECT, AUDIENCE)).expect("partner JWT");
            list.push(event(ALLOW_JWT, jwt_event(&token), true));
        }
        list.push(event(DENY_MTLS, mtls_event(&stranger.pem), true));
        list.push(event(DENY_MTLS, mtls_event(&revoked.pem), true));
        list.push(event(NO_CREDENTIALS, no_credentials_event(), false));
        list
    };
    let mut workload =
        Workload { function_name: "token-broker-authorizer", config, events: &mut events, check: &check };

    let results = measure(&bin, &args, &mut workload).await;
    print_report("authorizer", &bin, &args, &results, &load_before);
    println!("JWKS fetches: {} (one per cold start expected)", jwks.requests());
}
