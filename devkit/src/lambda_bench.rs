//! NOT FOR PRODUCTION. The harness behind the `authorizer_lambda_process` and `broker_lambda_process` examples
//! (named apart because examples of one workspace share `target/<profile>/examples/`): it runs a function's real
//! release binary under the [`RuntimeApi`] emulator, the way Lambda runs
//! `bootstrap`, and measures what `BENCHMARKS.md` records that no in-process
//! benchmark can: process start to ready, and the process's memory (functions run at 128 MB).
//!
//! One run = a fresh emulator, a freshly spawned process (a cold start), then `invocations` events round-robin
//! from the workload's list, each timed as a round trip through the emulator. Per run it records:
//! - start to ready: from just before `spawn` (fork + exec included) to the moment the emulator received the
//!   function's first `GET /runtime/invocation/next` ([`RuntimeApi::first_poll_at`]),
//!   i.e. the whole init phase Lambda reports as "Init Duration";
//! - `VmRSS` once ready, and `VmHWM` (the peak resident set) and `VmRSS` after the invocations, from
//!   `/proc/<pid>/status`: resident memory is what Lambda's memory setting limits;
//! - each invocation's round trip: the event queued, fetched by the function's long-poll, handled, the answer posted
//!   back. The emulator's own HTTP work is included, so these are upper bounds of the handler's cost.
//!
//! Figures are printed, never asserted: timing on a shared machine is no pass/fail criterion.
//!
//! [`RuntimeApi::first_poll_at`]: crate::runtime_api::RuntimeApi::first_poll_at

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::runtime_api::{lambda_env, FunctionProcess, Outcome, RuntimeApi};

/// Longest wait for a cold start or an invocation; far above anything a healthy release build needs, so a hang
/// ends the benchmark with the function's output instead of blocking it for ever.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Lambda's memory setting the functions are deployed with (MB in the console, MiB in fact).
pub const LAMBDA_MEMORY_MIB: f64 = 128.0;

/// Command-line options: `--runs N` (default 20), `--invocations N` (default 200), plus the numeric options a
/// workload declares.
#[derive(Debug, Clone)]
pub struct BenchArgs {
    pub runs: usize,
    pub invocations: usize,
    extra: Vec<(&'static str, usize)>,
}

impl BenchArgs {
    /// Parses the process's arguments. `extra` lists the workload's own `--name N` options with their defaults.
    /// Prints `usage` and exits on `--help` or anything it does not understand.
    pub fn from_env_args(usage: &str, extra: &[(&'static str, usize)]) -> BenchArgs {
        let mut args = BenchArgs { runs: 20, invocations: 200, extra: extra.to_vec() };
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            if flag == "--help" || flag == "-h" {
                println!("{usage}");
                std::process::exit(0);
            }
            let Some(name) = flag.strip_prefix("--") else {
                usage_error(&format!("unexpected argument {flag:?}"), usage)
            };
            let value = it.next().unwrap_or_else(|| usage_error(&format!("{flag} needs a number"), usage));
            let n: usize = match value.parse() {
                Ok(n) if n > 0 => n,
                _ => usage_error(&format!("{flag}: expected a whole number above 0, got {value:?}"), usage),
            };
            match name {
                "runs" => args.runs = n,
                "invocations" => args.invocations = n,
                _ => match args.extra.iter_mut().find(|(k, _)| *k == name) {
                    Some(slot) => slot.1 = n,
                    None => usage_error(&format!("unknown option {flag}"), usage),
                },
            }
        }
        args
    }

    /// The value of a workload option declared in [`BenchArgs::from_env_args`]'s `extra`.
    pub fn get(&self, name: &str) -> usize {
        match self.extra.iter().find(|(k, _)| *k == name) {
            Some((_, v)) => *v,
            None => panic!("option --{name} was not declared"),
        }
    }
}

fn usage_error(msg: &str, usage: &str) -> ! {
    eprintln!("{msg}\n\n{usage}");
    std::process::exit(2)
}

/// The function binary to measure: `$TB_LAMBDA_BIN_DIR/<name>` when set, else `<name>` in the directory above the
/// running example's (`target/release/examples/x` -> `target/release/<name>`), so `cargo run --release --example`
/// measures the release binaries beside it. Exits with the build command when the file is missing: an example
/// cannot build its package's binaries itself, and measuring a stale or debug binary would be misleading.
pub fn release_binary(name: &str, package: &str) -> PathBuf {
    let bin = match std::env::var_os("TB_LAMBDA_BIN_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir).join(name),
        None => {
            let exe = std::env::current_exe().expect("the path of the running example is known");
            match exe.parent().and_then(Path::parent) {
                Some(dir) => dir.join(name),
                None => PathBuf::from(name),
            }
        }
    };
    if !bin.is_file() {
        eprintln!(
            "the {name} binary is missing at {}.\nBuild it first, with the same CARGO_TARGET_DIR:\n  \
             cargo build --release -p {package} --bins\nand run this example with --release (or set \
             TB_LAMBDA_BIN_DIR to the directory holding {name}).",
            bin.display()
        );
        std::process::exit(2);
    }
    // The release profile strips symbols; `cargo bench` links unstripped, un-LTO'd binaries to the same path. Figures
    // from such a binary would describe a build nobody deploys.
    let unstripped = std::fs::read(&bin).map(|b| b.windows(7).any(|w| w == b".symtab")).unwrap_or(false);
    if unstripped {
        eprintln!(
            "{} has a symbol table: it is not the release profile's build (cargo bench writes to the same path).\n\
             Rebuild it first: cargo build --release -p {package} --bins",
            bin.display()
        );
        std::process::exit(2);
    }
    bin
}

/// Resident memory of a process, from `/proc/<pid>/status`, in KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcMemory {
    /// `VmHWM`: the peak resident set size so far.
    pub hwm_kib: u64,
    /// `VmRSS`: the resident set size now.
    pub rss_kib: u64,
    /// `Threads`.
    pub threads: u64,
}

/// Reads `pid`'s [`ProcMemory`] (Linux only).
pub fn proc_memory(pid: u32) -> std::io::Result<ProcMemory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> std::io::Result<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("no {name} in /proc/{pid}/status")))
    };
    Ok(ProcMemory { hwm_kib: field("VmHWM")?, rss_kib: field("VmRSS")?, threads: field("Threads")? })
}

/// One event of a workload's round-robin list.
#[derive(Debug, Clone)]
pub struct BenchEvent {
    /// What the event exercises, e.g. "mTLS allow"; invocations are reported grouped by it.
    pub kind: &'static str,
    pub event: Value,
    /// Whether a repeat of the same event can be answered from a cache: then its first use and its repeats are
    /// reported apart ("first sight" / "repeat").
    pub cached_on_repeat: bool,
}

/// What a workload gives [`measure`].
pub struct Workload<'a> {
    /// `AWS_LAMBDA_FUNCTION_NAME`.
    pub function_name: &'a str,
    /// The function's own configuration, added to [`lambda_env`]'s.
    pub config: Vec<(String, String)>,
    /// Builds the round-robin event list for run `run` (called before the run starts, outside every timing).
    pub events: &'a mut dyn FnMut(usize) -> Vec<BenchEvent>,
    /// Checks one answer; an `Err` stops the benchmark (a function that answers wrongly measures nothing).
    pub check: &'a dyn Fn(&BenchEvent, &Outcome) -> Result<(), String>,
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub start_to_ready: Duration,
    pub at_ready: ProcMemory,
    pub after: ProcMemory,
    /// The first invocation after the cold start (lazy initialisation, first connections).
    pub first_invocation: Duration,
    /// Every invocation but the first, labelled by kind.
    pub warm: Vec<(String, Duration)>,
    /// The function's log lines at WARN or ERROR: a retry or a fallback inside the function can explain an outlier.
    pub warnings: Vec<String>,
}

/// Runs `args.runs` cold starts of `bin` with `args.invocations` invocations each.
pub async fn measure(bin: &Path, args: &BenchArgs, workload: &mut Workload<'_>) -> Vec<RunResult> {
    let mut results = Vec::with_capacity(args.runs);
    for run in 0..args.runs {
        let events = (workload.events)(run);
        assert!(!events.is_empty(), "a workload needs at least one event");
        results.push(measure_run(bin, args.invocations, workload, &events).await);
    }
    results
}

async fn measure_run(bin: &Path, invocations: usize, workload: &Workload<'_>, events: &[BenchEvent]) -> RunResult {
    let api = RuntimeApi::start().await.expect("the Runtime API emulator starts on loopback");
    let mut env = lambda_env(&api, workload.function_name);
    env.extend(workload.config.iter().cloned());

    let spawned = Instant::now();
    let mut function =
        FunctionProcess::spawn(bin, &env).unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    if !api.wait_ready(TIMEOUT).await {
        let init = api.init_error(Duration::ZERO).await;
        function.kill();
        panic!("the function did not get ready (init error: {init:?}); output:\n{}", function.output());
    }
    let ready_at = api.first_poll_at().expect("a ready function has polled");
    let start_to_ready = ready_at.saturating_duration_since(spawned);
    let pid = function.id();
    let at_ready = proc_memory(pid).expect("/proc/<pid>/status of the running function is readable");

    let mut first_invocation = Duration::ZERO;
    let mut warm = Vec::with_capacity(invocations.saturating_sub(1));
    for i in 0..invocations {
        let ev = &events[i % events.len()];
        let started = Instant::now();
        let outcome = api.invoke(&ev.event, TIMEOUT).await;
        let took = started.elapsed();
        let outcome = match outcome {
            Ok(o) => o,
            Err(e) => {
                function.kill();
                panic!("invocation {i} ({}) failed: {e}; output:\n{}", ev.kind, function.output());
            }
        };
        if let Err(why) = (workload.check)(ev, &outcome) {
            function.kill();
            panic!("invocation {i} ({}) answered wrongly: {why}; output:\n{}", ev.kind, function.output());
        }
        if i == 0 {
            first_invocation = took;
        } else {
            let label = match (ev.cached_on_repeat, i < events.len()) {
                (false, _) => ev.kind.to_owned(),
                (true, true) => format!("{}, first sight", ev.kind),
                (true, false) => format!("{}, repeat", ev.kind),
            };
            warm.push((label, took));
        }
    }

    let after = proc_memory(pid).expect("/proc/<pid>/status of the running function is readable");
    if let Some(status) = function.try_exit_status() {
        panic!("the function exited ({status}) during the run; output:\n{}", function.output());
    }
    function.kill();
    let warnings = function
        .output()
        .lines()
        .filter(|l| l.contains(r#""level":"WARN""#) || l.contains(r#""level":"ERROR""#))
        .map(str::to_owned)
        .collect();
    RunResult { start_to_ready, at_ready, after, first_invocation, warm, warnings }
}

/// The load averages from `/proc/loadavg` (1, 5 and 15 minutes), for the report's context.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// The value at `pct` percent of `sorted` (nearest rank).
fn percentile<T: Copy>(sorted: &[T], pct: f64) -> T {
    let rank = ((pct / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Prints the report: one table of per-run figures (median, p90, max over runs), one of invocation round trips
/// (median, p99, max over all runs' invocations) by kind, and the peak memory against [`LAMBDA_MEMORY_MIB`].
pub fn print_report(name: &str, bin: &Path, args: &BenchArgs, results: &[RunResult], load_before: &str) {
    let size = std::fs::metadata(bin).map(|m| m.len()).unwrap_or(0);
    println!();
    println!(
        "{name}: {} runs x {} invocations; binary {} ({:.2} MiB)",
        args.runs,
        args.invocations,
        bin.display(),
        mib(size / 1024)
    );
    if !bin.parent().is_some_and(|d| d.ends_with("release")) && std::env::var_os("TB_LAMBDA_BIN_DIR").is_none() {
        println!("WARNING: this is not a release binary; run the example with --release");
    }
    println!("load average (1/5/15 min): before {load_before}, after {}", load_average());
    println!();
    println!("| per run (over {} runs) | median | p90 | max |", results.len());
    println!("|---|---|---|---|");
    let row = |label: &str, mut v: Vec<f64>, unit: &str| {
        v.sort_by(f64::total_cmp);
        let (p50, p90, max) = (percentile(&v, 50.0), percentile(&v, 90.0), v[v.len() - 1]);
        println!("| {label} | {p50:.1} {unit} | {p90:.1} {unit} | {max:.1} {unit} |");
    };
    row("start to ready", results.iter().map(|r| ms(r.start_to_ready)).collect(), "ms");
    row("first invocation", results.iter().map(|r| ms(r.first_invocation)).collect(), "ms");
    row("VmRSS when ready", results.iter().map(|r| mib(r.at_ready.rss_kib)).collect(), "MiB");
    row("VmHWM after the invocations", results.iter().map(|r| mib(r.after.hwm_kib)).collect(), "MiB");
    row("VmRSS after the invocations", results.iter().map(|r| mib(r.after.rss_kib)).collect(), "MiB");
    row("threads after the invocations", results.iter().map(|r| r.after.threads as f64).collect(), "");

    let mut kinds: Vec<String> = Vec::new();
    for (label, _) in results.iter().flat_map(|r| &r.warm) {
        if !kinds.contains(label) {
            kinds.push(label.clone());
        }
    }
    println!();
    println!("| invocation round trip (warm, all runs) | n | median | p99 | max |");
    println!("|---|---|---|---|---|");
    let mut all: Vec<Duration> = Vec::new();
    for kind in &kinds {
        let mut v: Vec<Duration> =
            results.iter().flat_map(|r| &r.warm).filter(|(l, _)| l == kind).map(|(_, d)| *d).collect();
        v.sort();
        all.extend(&v);
        let (p50, p99, max) = (percentile(&v, 50.0), percentile(&v, 99.0), v[v.len() - 1]);
        println!("| {kind} | {} | {:.0} µs | {:.0} µs | {:.0} µs |", v.len(), us(p50), us(p99), us(max));
    }
    if kinds.len() > 1 {
        all.sort();
        let (p50, p99, max) = (percentile(&all, 50.0), percentile(&all, 99.0), all[all.len() - 1]);
        println!(
            "| all warm invocations | {} | {:.0} µs | {:.0} µs | {:.0} µs |",
            all.len(),
            us(p50),
            us(p99),
            us(max)
        );
    }

    let warnings: Vec<&String> = results.iter().flat_map(|r| &r.warnings).collect();
    println!();
    println!("function log lines at WARN or ERROR: {}", warnings.len());
    // The message and error fields only: the functions never log secrets, and these stay short.
    for line in warnings.iter().take(5) {
        let v: Value = serde_json::from_str(line).unwrap_or(Value::Null);
        println!("  {} {}: {}", v["level"], v["message"], v["error"]);
    }

    let peak = results.iter().map(|r| r.after.hwm_kib).max().unwrap_or(0);
    println!();
    println!(
        "peak memory: VmHWM max {:.1} MiB over {} runs = {:.0}% of the {LAMBDA_MEMORY_MIB:.0} MB Lambda setting",
        mib(peak),
        results.len(),
        100.0 * mib(peak) / LAMBDA_MEMORY_MIB
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 90.0), 90);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&v, 100.0), 100);
        assert_eq!(percentile(&[7], 99.0), 7);
        assert_eq!(percentile(&[1, 2], 50.0), 1);
    }

    #[test]
    fn own_memory_is_readable() {
        let m = proc_memory(std::process::id()).unwrap();
        assert!(m.hwm_kib >= m.rss_kib && m.rss_kib > 0 && m.threads >= 1, "{m:?}");
    }
}
