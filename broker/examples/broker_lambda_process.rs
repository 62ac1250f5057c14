//! Process start to ready, memory and invocation round trips of the real `broker` release binary under the
//! project's Lambda Runtime API emulator (`tb_devkit::runtime_api`): the figures BENCHMARKS.md records ("Lambda
//! process: start to ready, memory") that the in-process criterion bench (`benches/grant.rs`) cannot give.
//!
//! ```sh
//! export CARGO_TARGET_DIR=$HOME/.cache/token-broker/target
//! cargo build --release -p tb-broker --bins
//! scripts/with-moto.sh \
//!   cargo run --release -p tb-broker --example broker_lambda_process -- --runs 20 --invocations 200
//! ```
//!
//! Every invocation is a real grant with token reuse off: the context MAC checked with the key set read from an SSM
//! SecureString at cold start (moto), the quota charged in DynamoDB (moto, from `scripts/with-moto.sh`), the app
//! client's credentials from an SSM SecureString (moto; cached after the first read of each run, as in Lambda), and an HTTP call to the Cognito token-endpoint stand-in, which signs an RS256
//! token. Two callers: one with a per-minute and a per-day quota (a DynamoDB transaction per grant) and one with a
//! single per-day quota (one conditional update); the limits are far above what a run uses. moto is a
//! single-threaded Python server, so the round trips here are dominated by it: they say how the process behaves,
//! not how fast DynamoDB is. Everything reached is on loopback. Nothing is asserted about time; answers are
//! checked (200 and a token) so a misconfigured run cannot pass as a fast one. No secret or token is printed.

use secrecy::ExposeSecret as _;
use serde_json::{json, Value};
use tb_devkit::cognito::{random_secret, CognitoStandin, StandinClient, StandinConfig};
use tb_devkit::events::ProxyRequestBuilder;
use tb_devkit::fixtures::{context_key_set, policy_yaml, reporting_caller, write_policy};
use tb_devkit::lambda_bench::{load_average, measure, print_report, release_binary, BenchArgs, BenchEvent, Workload};
use tb_devkit::moto::{self, unique};
use tb_devkit::runtime_api::Outcome;

const USAGE: &str = "usage: scripts/with-moto.sh cargo run --release -p tb-broker --example broker_lambda_process -- \
                     [--runs N (20)] [--invocations N (200)]";
/// The region `lambda_env` gives the function; the tables and parameters are made in the same one in moto.
const REGION: &str = "eu-west-1";
const SCOPES: [&str; 2] = ["customer-api/read", "customer-api/write"];

const TWO_WINDOWS: &str = "grant, minute + day quota (transaction)";
const ONE_WINDOW: &str = "grant, day quota (conditional update)";

/// Callers as `(caller id, Cognito app client id)`.
const CALLERS: [(&str, &str); 2] =
    [("orders", "bench0rdersclient0000000001"), ("reporting", "bench0reportclient000000001")];

/// The `orders` caller, one entry of the policy's `callers:` list; the other is devkit's `reporting` caller.
const ORDERS_CALLER: &str = r#"  - id: orders
    identities: [{ type: san_uri, value: "spiffe://example.internal/ns/orders/sa/order-processing" }]
    cognito_client: orders
    allowed_scopes: [customer-api/read, customer-api/write]
    default_scopes: [customer-api/read]
    quotas: [{ per: minute, limit: 1000000 }, { per: day, limit: 10000000 }]
    max_token_lifetime_seconds: 3600
    token_reuse: false
"#;

/// moto's endpoint from `scripts/with-moto.sh`; loopback only.
fn moto_endpoint() -> String {
    moto::try_endpoint().unwrap_or_else(|why| {
        eprintln!("{why}:\n  {USAGE}");
        std::process::exit(2)
    })
}

/// API Gateway's REST proxy event for `POST /oauth2/token` after the authorizer allowed `caller`.
fn proxy_event(caller: &str, body: &str, n: usize) -> Value {
    ProxyRequestBuilder::new(caller, body).request_id(&format!("bench-{n:06}")).to_json()
}

fn check(_ev: &BenchEvent, outcome: &Outcome) -> Result<(), String> {
    let Outcome::Response(r) = outcome else { return Err(format!("expected a proxy response, got {outcome:?}")) };
    if r["statusCode"] != 200 {
        return Err(format!("expected 200, got {} with body {}", r["statusCode"], r["body"]));
    }
    let body: Value = serde_json::from_str(r["body"].as_str().unwrap_or_default())
        .map_err(|e| format!("the body is not JSON: {e}"))?;
    // Only whether a token came back; the token itself is never printed.
    match body["access_token"].as_str() {
        Some(t) if !t.is_empty() && body["token_type"] == "Bearer" => Ok(()),
        _ => Err("no bearer token in a 200 answer".into()),
    }
}

#[tokio::main]
async fn main() {
    let args = BenchArgs::from_env_args(USAGE, &[]);
    let bin = release_binary("broker", "tb-broker");
    let endpoint = moto_endpoint();
    let load_before = load_average();

    let sdk = moto::sdk_config_at(&endpoint, REGION).await;
    let table = unique("bench-quota");
    moto::create_quota_table(&sdk, &table).await;

    // The Cognito stand-in with one app client per caller, and each client's credentials as an SSM SecureString.
    let clients: Vec<(&str, &str, String)> = CALLERS.iter().map(|(c, id)| (*c, *id, random_secret())).collect();
    let cognito = CognitoStandin::start(StandinConfig::new(
        clients.iter().map(|(_, id, secret)| StandinClient::new(*id, secret.clone(), &SCOPES)).collect(),
    ))
    .await
    .expect("the Cognito stand-in starts on loopback");
    let ssm_prefix = format!("/token-broker-bench/{}", unique("cognito"));
    for (caller, id, secret) in &clients {
        let value = json!({"client_id": id, "client_secret": secret, "token_url": cognito.token_url()});
        moto::put_secure_string(&sdk, &format!("{ssm_prefix}/{caller}"), &value.to_string()).await;
    }

    // The context-MAC key set, read once at cold start: the devkit's test key, which the events are signed with.
    let key_parameter = format!("/token-broker-bench/{}", unique("context-key"));
    moto::put_secure_string(&sdk, &key_parameter, context_key_set().to_document().expose_secret()).await;

    let policy = write_policy(&policy_yaml(&[ORDERS_CALLER, &reporting_caller(10_000_000)]));
    let config = [
        ("POLICY_FILE", policy.path().to_string_lossy().into_owned()),
        ("QUOTA_TABLE", table),
        ("SSM_PREFIX", ssm_prefix),
        ("CONTEXT_KEY_PARAMETER", key_parameter),
        ("LOG_LEVEL", "info".to_owned()),
        // What Lambda's execution role gives the function; here moto's fake keys and its endpoint.
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
        ("AWS_SESSION_TOKEN", "testing".to_owned()),
    ]
    .map(|(k, v)| (k.to_owned(), v))
    .to_vec();

    // orders with its default scope, orders asking for write, reporting: two of three grants take the transaction.
    let mut events = |run: usize| -> Vec<BenchEvent> {
        let grant = |kind, caller, body: &str, n| BenchEvent {
            kind,
            event: proxy_event(caller, body, run * 10 + n),
            cached_on_repeat: false,
        };
        vec![
            grant(TWO_WINDOWS, "orders", "grant_type=client_credentials", 0),
            grant(TWO_WINDOWS, "orders", "grant_type=client_credentials&scope=customer-api%2Fwrite", 1),
            grant(ONE_WINDOW, "reporting", "grant_type=client_credentials", 2),
        ]
    };
    let mut workload = Workload { function_name: "token-broker-broker", config, events: &mut events, check: &check };

    let results = measure(&bin, &args, &mut workload).await;
    print_report("broker", &bin, &args, &results, &load_before);
    let grants = (args.runs * args.invocations) as u64;
    println!("tokens issued by the Cognito stand-in: {} (expected {grants})", cognito.tokens_issued());
}
