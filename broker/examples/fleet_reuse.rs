//! Fleet token reuse against in-memory reuse only, measured on the real `broker` release binary: K processes under the
//! project's Lambda Runtime API emulator (K warm execution environments), moto serving DynamoDB, SSM and KMS, and the
//! Cognito stand-in counting the token requests, all asking for the same (app client, scope set) for a few reuse
//! windows. The figures BENCHMARKS.md records in "Fleet token reuse: Cognito calls per reuse window".
//!
//! ```sh
//! export CARGO_TARGET_DIR=$HOME/.cache/token-broker/target
//! cargo build --release -p tb-broker --bins --example fleet_reuse
//! scripts/with-moto.sh cargo run --release -p tb-broker --example fleet_reuse -- \
//!   --instances 1,4,16 --windows 3 --token-life-seconds 16 --interval-ms 100
//! ```
//!
//! The stand-in's tokens live 16 s (a 12 s reuse window) by default: short enough for a run of a few windows, long
//! enough that the 2 s the fleet cache counts as elapsed on every token it reads back (its clock allowance) cannot
//! end a shared token's reuse before its window does (it would under 12 s; Cognito's shortest token life is 5 min).
//!
//! For each K, two runs (fresh stand-in, tables and processes each): the caller with `token_reuse` only, then with
//! `fleet_token_reuse` as well, the fleet cache's settings at their defaults unless `--cache-timeout-ms` sets
//! `TOKEN_CACHE_TIMEOUT_MS`. Each instance gets one request every `--interval-ms`, the K instances joining one after
//! another over the first quarter window (so each one's first request finds the token in the table with nothing in
//! memory, as in a scale-out); from then on their memory entries all end together, at the table's reuse deadline,
//! so every later window starts with K instances missing at once. Printed per run: the Cognito calls (the
//! stand-in's count, checked against the decision log lines) and how they fall into reuse windows, and the round
//! trips of memory hits, fleet hits and fetches. moto is a single-threaded Python server on the same 2 cores, so a
//! fleet hit's figure is an upper bound that says little about DynamoDB's and KMS's own latency (single-digit
//! milliseconds in a region). Nothing is asserted about time (the `fleet_runtime` test asserts the counts); answers
//! are checked (200 with a token) so a failing run cannot pass as a fast one. No token or secret is printed.

use std::time::Duration;

use tb_devkit::fleet_bench::{percentile, FleetBench, FleetRun, Served};
use tb_devkit::lambda_bench::{load_average, release_binary};
use tb_devkit::moto;

const USAGE: &str = "usage: scripts/with-moto.sh cargo run --release -p tb-broker --example fleet_reuse -- \
                     [--instances 1,4,16] [--windows N (3)] [--token-life-seconds N (16)] [--interval-ms N (100)] \
                     [--cache-timeout-ms N (the broker's default)]";

struct Args {
    instances: Vec<usize>,
    windows: u32,
    token_life: Duration,
    interval: Duration,
    cache_timeout_ms: Option<u64>,
}

fn usage_error(msg: &str) -> ! {
    eprintln!("{msg}\n\n{USAGE}");
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut args = Args {
        instances: vec![1, 4, 16],
        windows: 3,
        token_life: Duration::from_secs(16),
        interval: Duration::from_millis(100),
        cache_timeout_ms: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--help" || flag == "-h" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let value = it.next().unwrap_or_else(|| usage_error(&format!("{flag} needs a value")));
        let number = |v: &str| -> u64 {
            match v.parse() {
                Ok(n) if n > 0 => n,
                _ => usage_error(&format!("{flag}: expected a whole number above 0, got {v:?}")),
            }
        };
        match flag.as_str() {
            "--instances" => args.instances = value.split(',').map(|v| number(v) as usize).collect(),
            "--windows" => args.windows = number(&value) as u32,
            "--token-life-seconds" => args.token_life = Duration::from_secs(number(&value)),
            "--interval-ms" => args.interval = Duration::from_millis(number(&value)),
            "--cache-timeout-ms" => args.cache_timeout_ms = Some(number(&value)),
            _ => usage_error(&format!("unknown option {flag}")),
        }
    }
    if args.token_life < Duration::from_secs(2) {
        usage_error("--token-life-seconds: at least 2 (the broker counts a token's life in whole seconds)");
    }
    args
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// `p50 / p95 ms (n)` of sorted round trips, or `-` for none.
fn cell(sorted: &[Duration]) -> String {
    match (percentile(sorted, 50.0), percentile(sorted, 95.0)) {
        (Some(p50), Some(p95)) => format!("{:.2} / {:.2} ms ({})", ms(p50), ms(p95), sorted.len()),
        _ => "-".to_owned(),
    }
}

fn mode(run: &FleetRun) -> &'static str {
    if run.fleet {
        "fleet"
    } else {
        "memory only"
    }
}

/// Fetches by the decision line's `fleet_cache` reason, e.g. `leased 4`.
fn reasons(run: &FleetRun) -> String {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for s in run.fetches() {
        let Served::Fetched(r) = &s.served else { continue };
        match counts.iter_mut().find(|(k, _)| k == r) {
            Some(c) => c.1 += 1,
            None => counts.push((r.clone(), 1)),
        }
    }
    counts.iter().map(|(k, n)| format!("{k} {n}")).collect::<Vec<_>>().join(", ")
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let bin = release_binary("broker", "tb-broker");
    let endpoint = moto::try_endpoint().unwrap_or_else(|why| usage_error(&why));
    let load_before = load_average();

    let mut runs = Vec::new();
    for &k in &args.instances {
        for fleet in [false, true] {
            let bench = FleetBench {
                bin: bin.clone(),
                instances: k,
                fleet,
                token_life: args.token_life,
                windows: args.windows,
                interval: args.interval,
                start_spread: args.token_life * 3 / 16,
                extra_env: args
                    .cache_timeout_ms
                    .map(|ms| ("TOKEN_CACHE_TIMEOUT_MS".to_owned(), ms.to_string()))
                    .into_iter()
                    .collect(),
            };
            eprintln!("fleet_reuse: K = {k}, {} ...", if fleet { "fleet" } else { "memory only" });
            let run = bench.run(&endpoint).await;
            if run.secret_in_logs {
                eprintln!("a function logged a token or the client secret");
                std::process::exit(1);
            }
            runs.push(run);
        }
    }

    let window = args.token_life * 3 / 4;
    println!();
    println!(
        "fleet_reuse: binary {}; token life {} s (reuse window {:.1} s); {} windows + half; one request per instance \
         every {} ms",
        bin.display(),
        args.token_life.as_secs(),
        window.as_secs_f64(),
        args.windows,
        args.interval.as_millis()
    );
    println!("load average (1/5/15 min): before {load_before}, after {}", load_average());
    if let Some(ms) = args.cache_timeout_ms {
        println!("fleet runs with TOKEN_CACHE_TIMEOUT_MS={ms}");
    }
    println!();
    println!("| K | reuse | requests | Cognito calls | windows | calls by window | calls per window | distinct tokens | fetch reasons |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in &runs {
        let by = r.fetches_by_window();
        let fetched = r.fetches().count() as u64;
        let check = if fetched == r.cognito_calls { String::new() } else { format!(" (log: {fetched})") };
        println!(
            "| {} | {} | {} | {}{check} | {} | {} | {:.2} | {} | {} |",
            r.instances,
            mode(r),
            r.samples.len(),
            r.cognito_calls,
            by.len(),
            by.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
            r.fetches_per_window(),
            r.distinct_tokens(),
            reasons(r),
        );
    }
    println!();
    println!(
        "| K | reuse | memory hit p50 / p95 (n) | fleet hit, first on the instance | fleet hit, again | fleet hit that \
         waited on a lease | fetch from Cognito |"
    );
    println!("|---|---|---|---|---|---|---|");
    for r in &runs {
        let l = r.latencies();
        println!(
            "| {} | {} | {} | {} | {} | {} | {} |",
            r.instances,
            mode(r),
            cell(&l.memory),
            cell(&l.fleet_first),
            cell(&l.fleet_again),
            cell(&l.fleet_waited),
            cell(&l.fetch)
        );
    }
    println!();
    for r in &runs {
        if !r.warnings.is_empty() {
            println!("K = {} {}: {} log lines at WARN or ERROR, e.g.", r.instances, mode(r), r.warnings.len());
            for w in r.warnings.iter().take(3) {
                let v: serde_json::Value = serde_json::from_str(w).unwrap_or_default();
                println!("  {} {}: {}", v["level"], v["message"], v["error"]);
            }
        }
    }
}
