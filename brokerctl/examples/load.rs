//! Local end-to-end throughput: starts the local stack in-process (embedded stores, token reuse off, the stage
//! throttle raised out of the way) and drives `POST /oauth2/token` over keep-alive mTLS connections as
//! order-processing, counting grants (HTTP 200) per second.
//!
//! ```sh
//! cargo run --release -p brokerctl --example load -- [CONNECTIONS] [SECONDS]
//! ```
//!
//! Every request goes through the whole chain: TLS, the gateway emulation, the authorizer handler (its decision
//! cache hits after the first request, as in production with the gateway cache off), the broker handler, the
//! embedded quota store and a real HTTP call to the Cognito stand-in, which signs an RS256 token each time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use brokerctl::devstack::{DevOptions, DevStack, GatewaySettings};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let connections: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(32);
    let seconds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    let dir = std::env::temp_dir().join(format!("brokerctl-load-{}", std::process::id()));
    let opts = DevOptions {
        state_dir: dir.clone(),
        gateway: GatewaySettings { stage_rate: 1e9, stage_burst: u32::MAX, ..GatewaySettings::default() },
        ..DevOptions::default()
    };
    let stack = match DevStack::start(opts).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot start the local stack: {e}");
            std::process::exit(2);
        }
    };
    let p = &stack.state().paths;
    let read = |path: std::path::PathBuf| std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut identity = read(p.client_cert("order-processing"));
    identity.extend(read(p.client_key("order-processing")));
    let ca = read(p.ca_cert());
    let url = format!("{}/oauth2/token", stack.mtls_url());

    let ok = Arc::new(AtomicU64::new(0));
    let other = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for _ in 0..connections {
        // One client per connection so each task keeps its own keep-alive TLS connection.
        let client = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("CA"))
            .identity(reqwest::Identity::from_pem(&identity).expect("identity"))
            .pool_max_idle_per_host(1)
            .build()
            .expect("client");
        let (ok, other, url) = (ok.clone(), other.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let r = client.post(&url).form(&[("grant_type", "client_credentials")]).send().await;
                match r {
                    Ok(resp) if resp.status() == 200 => {
                        let _ = resp.bytes().await;
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(resp) => {
                        let _ = resp.bytes().await;
                        other.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => {
                        other.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    let started = Instant::now();
    for t in tasks {
        let _ = t.await;
    }
    let secs = started.elapsed().as_secs_f64();
    let grants = ok.load(Ordering::Relaxed);
    println!(
        "{grants} grants, {} other answers in {secs:.1} s over {connections} keep-alive mTLS connections: {:.0} grants/s",
        other.load(Ordering::Relaxed),
        grants as f64 / secs
    );
    drop(stack);
    let _ = std::fs::remove_dir_all(dir);
}
