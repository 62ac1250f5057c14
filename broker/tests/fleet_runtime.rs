//! Fleet token reuse across real broker processes: four copies of the `broker` binary, each under its own Runtime API
//! emulator (four warm Lambda execution environments), sharing the token-cache table and KMS key in moto, all asking
//! for the same (app client, scope set) at once for longer than a token's reuse window, with the Cognito stand-in
//! counting the token requests. With `fleet_token_reuse` the fleet makes one Cognito call per reuse window, whose
//! token every instance serves; with in-memory reuse only, each instance makes its own. Counts only: nothing here is
//! timed (the `fleet_reuse` example measures, BENCHMARKS.md records).
//!
//! The harness is `tb_devkit::fleet_bench`: the app client's tokens live 16 s, so a reuse window is 12 s (long enough
//! that the 2 s clock allowance the fleet cache counts on a token it reads back cannot end its reuse early); each run
//! lasts a window and a half, each instance getting one request every 100 ms, the four starting together (the herd of
//! a cold fleet).
//!
//! Run through the emulator script (never skipped: without moto the tests fail and say so):
//! `scripts/with-moto.sh cargo test -p tb-broker --test fleet_runtime`.
//! The binary is `$TB_LAMBDA_BIN_DIR/broker`, the release build, when `scripts/test.sh` runs the tests; else this
//! package's debug build.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tb_devkit::fleet_bench::{FleetBench, FleetRun, Served};
use tb_devkit::moto;
use tb_devkit::runtime_api::function_binary;

const K: usize = 4;

fn bench(fleet: bool, windows: u32) -> FleetBench {
    FleetBench {
        bin: function_binary("broker", env!("CARGO_BIN_EXE_broker")),
        instances: K,
        fleet,
        token_life: Duration::from_secs(16),
        windows,
        interval: Duration::from_millis(100),
        start_spread: Duration::ZERO,
        // The defaults (400 ms per operation, a 4 s lease, a 4.5 s wait) are sized for DynamoDB and KMS. One
        // single-threaded moto serving the whole workspace's tests can be slower than that, and the broker then
        // rightly fetches by itself (cache skipped, lease expired, wait over): more Cognito calls by design, which
        // would say nothing about the protocol. Raised here, any extra call is a fault of the protocol.
        extra_env: [
            ("TOKEN_CACHE_TIMEOUT_MS", "5000"),
            ("TOKEN_CACHE_LEASE_MS", "10000"),
            ("TOKEN_CACHE_WAIT_MS", "10000"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .to_vec(),
    }
}

/// Per token served (by digest): the instances that fetched it from Cognito, that got it from the fleet cache, and
/// that served it at all.
#[derive(Debug, Default)]
struct TokenUse {
    fetched_on: Vec<usize>,
    fleet_hits_on: Vec<usize>,
    served_on: BTreeSet<usize>,
}

fn by_token(run: &FleetRun) -> BTreeMap<String, TokenUse> {
    let mut m: BTreeMap<String, TokenUse> = BTreeMap::new();
    for s in &run.samples {
        let u = m.entry(s.token_digest.clone()).or_default();
        u.served_on.insert(s.instance);
        match s.served {
            Served::Fetched(_) => u.fetched_on.push(s.instance),
            Served::Fleet => u.fleet_hits_on.push(s.instance),
            Served::Memory => {}
        }
    }
    m
}

/// What a failed assertion shows: the counts, never a token.
fn summary(run: &FleetRun) -> String {
    let fetches: Vec<String> =
        run.fetches().map(|s| format!("instance {} at {:?}: {:?}", s.instance, s.started, s.served)).collect();
    format!(
        "Cognito calls {}, requests {}, span {:?}, reuse window {:?}, fetches by window {:?}, fetches [{}], \
         warnings {:?}",
        run.cognito_calls,
        run.samples.len(),
        run.span(),
        run.reuse_window,
        run.fetches_by_window(),
        fetches.join("; "),
        run.warnings
    )
}

fn assert_clean(run: &FleetRun) {
    assert!(!run.secret_in_logs, "a function logged a token it served or the app client's secret");
    assert!(run.warnings.is_empty(), "no instance may warn or fail: {}", summary(run));
    // Every request was answered from somewhere the decision line names, and every fetch reached the stand-in.
    assert_eq!(run.cognito_calls, run.fetches().count() as u64, "{}", summary(run));
}

#[tokio::test(flavor = "multi_thread")]
async fn four_instances_sharing_the_fleet_cache_make_one_cognito_call_per_reuse_window() {
    let run = bench(true, 1).run(&moto::endpoint()).await;
    let s = summary(&run);
    assert_clean(&run);
    // Each fetch was the lease holder's: none waited out another's lease, none skipped an unreachable cache.
    assert!(run.fetches().all(|f| f.served == Served::Fetched("leased".into())), "{s}");
    // 1.5 reuse windows of requests: the first token's window ends within the run, so a second call is needed; a
    // token is served until a window after it was asked for, so one call per window allows no more than this.
    assert!(run.cognito_calls >= 2, "{s}");
    assert!(run.cognito_calls <= run.windows_bound(), "at most one Cognito call per reuse window: {s}");
    // Each token: fetched once, by one instance, and served by all four, each of the three others getting it from
    // the table (then from its own memory, until that entry ends and it reads the table again).
    let tokens = by_token(&run);
    assert_eq!(tokens.len() as u64, run.cognito_calls, "{s}");
    for (n, u) in tokens.values().enumerate() {
        assert_eq!(u.fetched_on.len(), 1, "token {n}: {u:?}; {s}");
        assert_eq!(u.served_on.len(), K, "token {n} served on every instance: {u:?}; {s}");
        let from_table: BTreeSet<usize> = u.fleet_hits_on.iter().copied().collect();
        let others: BTreeSet<usize> = (0..K).filter(|i| *i != u.fetched_on[0]).collect();
        assert_eq!(from_table, others, "token {n} reached each other instance through the table: {u:?}; {s}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn four_instances_with_memory_reuse_only_make_one_cognito_call_each_per_reuse_window() {
    let run = bench(false, 1).run(&moto::endpoint()).await;
    let s = summary(&run);
    assert_clean(&run);
    assert_eq!(run.count(|h| *h == Served::Fleet), 0, "{s}");
    assert!(run.fetches().all(|f| f.served == Served::Fetched("-".into())), "{s}");
    // In the first reuse window each instance asks Cognito once for the token its memory does not have.
    assert_eq!(run.fetches_by_window()[0], K, "{s}");
    // No token is shared: each is fetched and served by one instance only.
    for (n, u) in by_token(&run).values().enumerate() {
        assert_eq!((u.fetched_on.len(), u.served_on.len()), (1, 1), "token {n}: {u:?}; {s}");
    }
}
