//! NOT FOR PRODUCTION. K warm broker instances asking for the same token at once: the harness behind the
//! `fleet_reuse` example (BENCHMARKS.md, "Fleet token reuse") and the `fleet_runtime` test, which differ only in what
//! they do with a [`FleetRun`] (print it, or assert its counts).
//!
//! One run = K copies of the real `broker` binary, each under its own [`RuntimeApi`] emulator (in Lambda, K warm
//! execution environments), sharing one moto (quota table, SSM, and in fleet mode the token-cache table and a KMS
//! key) and one Cognito stand-in whose app client issues short-lived tokens, so that a run lasting a few reuse windows
//! stays short. A driver sends each instance one request at a time, every `interval` (the instances staggered across
//! it), all for the same caller and scope set, and records each round trip; each instance's decision log line then
//! says how the request was served (memory, fleet cache, or a Cognito fetch, and why).
//!
//! Before the run each instance answers one request of a second caller of the same app client without reuse: it
//! opens the connections to moto and to the stand-in and caches the app client's credentials, so the run measures
//! warm instances. Cognito calls are counted from after those.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use secrecy::ExposeSecret as _;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use crate::cognito::{random_secret, CognitoStandin, StandinClient, StandinConfig};
use crate::events::ProxyRequestBuilder;
use crate::fixtures::{context_key_set, policy_yaml, write_policy};
use crate::moto::{self, unique};
use crate::runtime_api::{lambda_env, FunctionProcess, Outcome, RuntimeApi};

/// The region [`lambda_env`] gives the function; moto keeps regions apart, so everything is made in this one.
pub const REGION: &str = "eu-west-1";
/// The caller every measured request is for, and the scope set it asks for (its defaults).
pub const CALLER: &str = "fleet-bench";
const WARMUP_CALLER: &str = "fleet-warmup";
const SCOPES: [&str; 2] = ["customer-api/read", "customer-api/write"];
/// The Cognito app client id both callers use (one app client, as in the policy).
pub const CLIENT_ID: &str = "fleetbenchclient0000000001";
/// Longest wait for a cold start or one invocation: a hang ends the run with the functions' output.
const TIMEOUT: Duration = Duration::from_secs(30);

/// What to run.
#[derive(Debug, Clone)]
pub struct FleetBench {
    /// The `broker` binary.
    pub bin: PathBuf,
    /// K: how many broker processes.
    pub instances: usize,
    /// Whether the caller has `fleet_token_reuse` (and the functions `TOKEN_CACHE_TABLE`/`TOKEN_CACHE_KMS_KEY`);
    /// without it the caller has in-memory reuse only.
    pub fleet: bool,
    /// The app client's access-token validity at the stand-in. The reuse window is three quarters of it.
    pub token_life: Duration,
    /// How many whole reuse windows the run lasts; half a window more is added so the last one's start is seen.
    pub windows: u32,
    /// Time between two requests to one instance.
    pub interval: Duration,
    /// Instance i sends its first request i/K of this after the run starts: zero makes all K ask at once (the herd of
    /// a cold fleet); a quarter of a reuse window has instances join one after another, each first request finding the
    /// token in the table with nothing in memory (a scale-out).
    pub start_spread: Duration,
    /// More function configuration, e.g. `TOKEN_CACHE_*` settings.
    pub extra_env: Vec<(String, String)>,
}

/// How one request was served, from the instance's decision log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Served {
    /// From the instance's own memory.
    Memory,
    /// From the fleet cache (DynamoDB, the data key from KMS or this instance's key cache).
    Fleet,
    /// From Cognito; the text is the log line's `fleet_cache` (`leased`, `waited_out`, `unavailable`, `bypassed`),
    /// or `-` for a caller without the fleet cache.
    Fetched(String),
}

/// One measured request.
#[derive(Debug, Clone)]
pub struct Sample {
    pub instance: usize,
    /// When it was sent, from the run's start.
    pub started: Duration,
    /// Its round trip through the emulator.
    pub took: Duration,
    pub served: Served,
    /// The first 16 hex digits of the SHA-256 of the token served (never the token): which token it was.
    pub token_digest: String,
}

impl Sample {
    fn end(&self) -> Duration {
        self.started + self.took
    }
}

/// What one run measured.
pub struct FleetRun {
    pub instances: usize,
    pub fleet: bool,
    /// Three quarters of the token life: how long one token is served.
    pub reuse_window: Duration,
    /// The whole reuse windows the run lasted (half a window more followed).
    pub windows: u32,
    /// Every measured request, by start.
    pub samples: Vec<Sample>,
    /// Token requests of the app client that reached the Cognito stand-in during the run.
    pub cognito_calls: u64,
    /// The functions' log lines at WARN or ERROR.
    pub warnings: Vec<String>,
    /// Whether any function's output contained a token it served or the app client's secret.
    pub secret_in_logs: bool,
}

impl FleetRun {
    /// From the first request's start to the last one's end.
    pub fn span(&self) -> Duration {
        let first = self.samples.iter().map(|s| s.started).min().unwrap_or_default();
        let last = self.samples.iter().map(Sample::end).max().unwrap_or_default();
        last.saturating_sub(first)
    }

    /// The most Cognito fetches a run of this span can need when one fetch serves the fleet for a whole reuse
    /// window: a token is reused until a window after it was asked for, so fetches are at least a window apart.
    pub fn windows_bound(&self) -> u64 {
        (self.span().as_nanos() / self.reuse_window.as_nanos().max(1)) as u64 + 1
    }

    /// The requests served from Cognito.
    pub fn fetches(&self) -> impl Iterator<Item = &Sample> {
        self.samples.iter().filter(|s| matches!(s.served, Served::Fetched(_)))
    }

    /// Cognito fetches per reuse window, window n being the requests sent in [n·w − w/8, (n+1)·w − w/8) of the run's
    /// clock. The eighth of a window before each edge absorbs the time between a request's start and the moment its
    /// instance finds the token past its deadline (a fetch on the edge would otherwise fall in the window before);
    /// fetches are at least a window apart, and drift by at most a few hundred milliseconds over a run.
    pub fn fetches_by_window(&self) -> Vec<usize> {
        let w = self.reuse_window.as_nanos().max(1);
        let index = |s: &Sample| ((s.started.as_nanos() + w / 8) / w) as usize;
        let last = self.samples.iter().map(index).max().unwrap_or(0);
        let mut by = vec![0; last + 1];
        for s in self.fetches() {
            by[index(s)] += 1;
        }
        by
    }

    /// Cognito fetches per reuse window: the mean of [`Self::fetches_by_window`] over every window the run started.
    pub fn fetches_per_window(&self) -> f64 {
        let by = self.fetches_by_window();
        by.iter().sum::<usize>() as f64 / by.len().max(1) as f64
    }

    /// How many distinct tokens were served.
    pub fn distinct_tokens(&self) -> usize {
        self.samples.iter().map(|s| s.token_digest.as_str()).collect::<BTreeSet<_>>().len()
    }

    /// How many requests were served as `served` says.
    pub fn count(&self, served: impl Fn(&Served) -> bool) -> usize {
        self.samples.iter().filter(|s| served(&s.served)).count()
    }

    /// Round trips by kind (see [`Latencies`]). Samples are in start order, so "already served here" looks back.
    pub fn latencies(&self) -> Latencies {
        let fetches: Vec<&Sample> = self.fetches().collect();
        let mut seen: BTreeSet<(usize, &str)> = BTreeSet::new();
        let mut l = Latencies::default();
        for s in &self.samples {
            let first_here = seen.insert((s.instance, s.token_digest.as_str()));
            match &s.served {
                Served::Memory => l.memory.push(s.took),
                Served::Fetched(_) => l.fetch.push(s.took),
                Served::Fleet if fetches.iter().any(|f| f.started < s.end() && s.started < f.end()) => {
                    l.fleet_waited.push(s.took)
                }
                Served::Fleet if first_here => l.fleet_first.push(s.took),
                Served::Fleet => l.fleet_again.push(s.took),
            }
        }
        for v in [&mut l.memory, &mut l.fleet_first, &mut l.fleet_again, &mut l.fleet_waited, &mut l.fetch] {
            v.sort();
        }
        l
    }
}

/// Sorted round trips by kind (see [`FleetRun::latencies`]).
#[derive(Debug, Default, Clone)]
pub struct Latencies {
    /// Served from the instance's memory.
    pub memory: Vec<Duration>,
    /// From the table, a token this instance had not served yet, while no instance was fetching: a table read and,
    /// for a data key new to the instance, a KMS decrypt.
    pub fleet_first: Vec<Duration>,
    /// From the table, a token this instance had served already: its memory entry ended before the table's reuse
    /// deadline (the fleet cache dates a token it read back by the clock allowance). The data key is cached.
    pub fleet_again: Vec<Duration>,
    /// From the table, overlapping another instance's fetch: it waited on that instance's lease (or at least shared
    /// moto with it).
    pub fleet_waited: Vec<Duration>,
    /// From Cognito.
    pub fetch: Vec<Duration>,
}

/// The value at `pct` percent of `sorted` (nearest rank); `None` when empty.
pub fn percentile(sorted: &[Duration], pct: f64) -> Option<Duration> {
    let rank = ((pct / 100.0) * sorted.len() as f64).ceil() as usize;
    (!sorted.is_empty()).then(|| sorted[rank.clamp(1, sorted.len()) - 1])
}

/// The measured caller and the warm-up caller (same app client, no reuse, so every warm-up request reaches Cognito
/// once per instance and never touches the measured caller's cache entries).
fn policy(fleet: bool) -> String {
    let fleet_line = if fleet { "    fleet_token_reuse: true\n" } else { "" };
    let caller = |id: &str, reuse: bool| {
        format!(
            "  - id: {id}\n    \
             identities: [{{ type: san_uri, value: \"spiffe://example.internal/ns/bench/sa/{id}\" }}]\n    \
             cognito_client: fleet-bench\n    \
             allowed_scopes: [{s}]\n    \
             default_scopes: [{s}]\n    \
             quotas: [{{ per: day, limit: 10000000 }}]\n    \
             max_token_lifetime_seconds: 3600\n    \
             token_reuse: {reuse}\n{f}",
            s = SCOPES.join(", "),
            f = if reuse { fleet_line } else { "" },
        )
    };
    policy_yaml(&[&caller(CALLER, true), &caller(WARMUP_CALLER, false)])
}

fn event(caller: &str, request_id: &str) -> Value {
    ProxyRequestBuilder::new(caller, "grant_type=client_credentials").request_id(request_id).to_json()
}

/// The token of a 200 answer, or why there is none (the body is shown only when it has no token).
fn token_of(outcome: &Outcome) -> Result<String, String> {
    let Outcome::Response(r) = outcome else { return Err(format!("expected a proxy response, got {outcome:?}")) };
    if r["statusCode"] != 200 {
        return Err(format!("expected 200, got {} with body {}", r["statusCode"], r["body"]));
    }
    let body: Value = serde_json::from_str(r["body"].as_str().unwrap_or_default())
        .map_err(|e| format!("the body is not JSON: {e}"))?;
    match body["access_token"].as_str() {
        Some(t) if !t.is_empty() => Ok(t.to_owned()),
        _ => Err("no token in a 200 answer".into()),
    }
}

fn digest(token: &str) -> String {
    hex::encode(&Sha256::digest(token.as_bytes())[..8])
}

struct Instance {
    api: Arc<RuntimeApi>,
    function: FunctionProcess,
}

fn fail(instances: &mut [Instance], why: String) -> ! {
    let mut out = String::new();
    for (i, inst) in instances.iter_mut().enumerate() {
        inst.function.kill();
        out.push_str(&format!("--- instance {i} ---\n{}\n", inst.function.output()));
    }
    panic!("{why}\n{out}");
}

/// One measured request as the driver saw it, before the log says how it was served.
struct Sent {
    instance: usize,
    request_id: String,
    started: Duration,
    took: Duration,
    token: String,
}

impl FleetBench {
    /// Runs once against moto at `endpoint`. Panics (with every function's output) when an instance does not start
    /// or answers anything but a token: a run with failures measures nothing.
    pub async fn run(&self, endpoint: &str) -> FleetRun {
        assert!(self.instances > 0 && self.windows > 0, "at least one instance and one window");
        let sdk = moto::sdk_config_at(endpoint, REGION).await;
        let quota_table = unique("fleet-quota");
        moto::create_quota_table(&sdk, &quota_table).await;
        let secret = random_secret();
        let client = StandinClient::new(CLIENT_ID, secret.clone(), &SCOPES).token_validity(self.token_life);
        let cognito =
            CognitoStandin::start(StandinConfig::new(vec![client])).await.expect("the Cognito stand-in starts");
        let ssm_prefix = format!("/token-broker-fleet/{}", unique("cognito"));
        let creds = json!({"client_id": CLIENT_ID, "client_secret": secret, "token_url": cognito.token_url()});
        moto::put_secure_string(&sdk, &format!("{ssm_prefix}/fleet-bench"), &creds.to_string()).await;
        let key_parameter = format!("/token-broker-fleet/{}", unique("context-key"));
        let key_document = context_key_set().to_document();
        moto::put_secure_string(&sdk, &key_parameter, key_document.expose_secret()).await;
        let policy = write_policy(&policy(self.fleet));

        let mut config: Vec<(String, String)> = [
            ("POLICY_FILE", policy.path().to_string_lossy().into_owned()),
            ("QUOTA_TABLE", quota_table),
            ("SSM_PREFIX", ssm_prefix),
            ("CONTEXT_KEY_PARAMETER", key_parameter),
            ("LOG_LEVEL", "info".to_owned()),
            // What Lambda's execution role gives the function; here moto's fake keys and its endpoint.
            ("AWS_ENDPOINT_URL", endpoint.to_owned()),
            ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
            ("AWS_SESSION_TOKEN", "testing".to_owned()),
        ]
        .map(|(k, v)| (k.to_owned(), v))
        .to_vec();
        if self.fleet {
            let table = unique("fleet-tokens");
            moto::create_token_cache_table(&sdk, &table).await;
            config.push(("TOKEN_CACHE_TABLE".into(), table));
            config.push(("TOKEN_CACHE_KMS_KEY".into(), moto::create_kms_key(&sdk).await));
        }
        config.extend(self.extra_env.iter().cloned());

        let mut instances = Vec::with_capacity(self.instances);
        for _ in 0..self.instances {
            let api = RuntimeApi::start().await.expect("the Runtime API emulator starts on loopback");
            let mut env = lambda_env(&api, "token-broker-broker");
            env.extend(config.iter().cloned());
            let function = FunctionProcess::spawn(&self.bin, &env)
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.bin.display()));
            instances.push(Instance { api: Arc::new(api), function });
        }
        for i in 0..instances.len() {
            if !instances[i].api.wait_ready(TIMEOUT).await {
                let init = instances[i].api.init_error(Duration::ZERO).await;
                fail(&mut instances, format!("instance {i} did not get ready (init error: {init:?})"));
            }
        }
        if let Err(why) = self.warm_up(&instances).await {
            fail(&mut instances, why);
        }

        let before = cognito.token_requests_for(CLIENT_ID);
        let sent = match self.drive(&instances).await {
            Ok(s) => s,
            Err(why) => fail(&mut instances, why),
        };
        let cognito_calls = cognito.token_requests_for(CLIENT_ID) - before;
        let exited = instances.iter_mut().enumerate().find_map(|(i, f)| Some((i, f.function.try_exit_status()?)));
        if let Some((i, status)) = exited {
            fail(&mut instances, format!("instance {i} exited ({status}) during the run"));
        }

        let mut outputs = Vec::with_capacity(instances.len());
        for inst in &mut instances {
            inst.function.kill();
            outputs.push(inst.function.output());
        }
        let served = decisions(&outputs);
        let tokens: BTreeSet<&str> = sent.iter().map(|s| s.token.as_str()).collect();
        let secret_in_logs = outputs.iter().any(|o| o.contains(&secret) || tokens.iter().any(|t| o.contains(t)));
        let warnings = outputs
            .iter()
            .flat_map(|o| o.lines())
            .filter(|l| l.contains(r#""level":"WARN""#) || l.contains(r#""level":"ERROR""#))
            .map(str::to_owned)
            .collect();
        let mut samples = Vec::with_capacity(sent.len());
        for s in &sent {
            let Some(how) = served.get(&s.request_id) else {
                fail(&mut instances, format!("no decision log line for {}", s.request_id))
            };
            samples.push(Sample {
                instance: s.instance,
                started: s.started,
                took: s.took,
                served: how.clone(),
                token_digest: digest(&s.token),
            });
        }
        samples.sort_by_key(|s| s.started);
        FleetRun {
            instances: self.instances,
            fleet: self.fleet,
            reuse_window: self.token_life * 3 / 4,
            windows: self.windows,
            samples,
            cognito_calls,
            warnings,
            secret_in_logs,
        }
    }

    /// One request of the warm-up caller per instance, all at once.
    async fn warm_up(&self, instances: &[Instance]) -> Result<(), String> {
        let tasks: Vec<_> = instances
            .iter()
            .enumerate()
            .map(|(i, inst)| {
                let api = inst.api.clone();
                tokio::spawn(async move {
                    let outcome = api.invoke(&event(WARMUP_CALLER, &format!("warmup-{i}")), TIMEOUT).await;
                    let outcome = outcome.map_err(|e| format!("warm-up of instance {i}: {e}"))?;
                    token_of(&outcome).map(|_| ()).map_err(|e| format!("warm-up of instance {i}: {e}"))
                })
            })
            .collect();
        for t in tasks {
            t.await.map_err(|e| format!("warm-up task: {e}"))??;
        }
        Ok(())
    }

    /// Each instance gets a request every `interval`, one at a time (a Lambda execution environment handles one
    /// event at a time), instance i starting i/K of `start_spread` after the first.
    async fn drive(&self, instances: &[Instance]) -> Result<Vec<Sent>, String> {
        let window = self.token_life * 3 / 4;
        let run_for = window * self.windows + window / 2;
        let k = instances.len() as u32;
        let t0 = Instant::now() + Duration::from_millis(50);
        let tasks: Vec<_> = instances
            .iter()
            .enumerate()
            .map(|(i, inst)| {
                let api = inst.api.clone();
                let (interval, spread) = (self.interval, self.start_spread);
                tokio::spawn(async move {
                    let mut sent = Vec::new();
                    let mut next = t0 + spread * i as u32 / k;
                    let end = t0 + run_for;
                    let mut n = 0usize;
                    while next < end {
                        let request_id = format!("run-{i}-{n}");
                        let ev = event(CALLER, &request_id);
                        tokio::time::sleep_until(next.into()).await;
                        let started = Instant::now();
                        let outcome = api.invoke(&ev, TIMEOUT).await;
                        let took = started.elapsed();
                        let outcome = outcome.map_err(|e| format!("{request_id} on instance {i}: {e}"))?;
                        let token = token_of(&outcome).map_err(|e| format!("{request_id} on instance {i}: {e}"))?;
                        sent.push(Sent { instance: i, request_id, started: started - t0, took, token });
                        next = (next + interval).max(Instant::now());
                        n += 1;
                    }
                    Ok::<_, String>(sent)
                })
            })
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.map_err(|e| format!("driver task: {e}"))??);
        }
        Ok(all)
    }
}

/// How each request was served, by request id, from the `token granted` decision lines of the functions' output.
fn decisions(outputs: &[String]) -> HashMap<String, Served> {
    let mut by_id = HashMap::new();
    for line in outputs.iter().flat_map(|o| o.lines()) {
        let Ok(v) = serde_json::from_str::<Value>(line) else { continue };
        if v["message"] != "token granted" {
            continue;
        }
        let Some(id) = v["span"]["request_id"].as_str() else { continue };
        let fleet = v["fleet_cache"].as_str();
        let served = match (v["reason"].as_str(), fleet) {
            (Some("reused"), Some("hit")) => Served::Fleet,
            (Some("reused"), _) => Served::Memory,
            (_, f) => Served::Fetched(f.unwrap_or("-").to_owned()),
        };
        by_id.insert(id.to_owned(), served);
    }
    by_id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decision_lines_say_how_a_request_was_served() {
        let lines = [
            r#"{"level":"INFO","message":"token granted","reason":"reused","span":{"request_id":"a"}}"#,
            r#"{"level":"INFO","message":"token granted","reason":"reused","fleet_cache":"hit","span":{"request_id":"b"}}"#,
            r#"{"level":"INFO","message":"token granted","reason":"issued","fleet_cache":"leased","span":{"request_id":"c"}}"#,
            r#"{"level":"INFO","message":"token granted","reason":"issued","span":{"request_id":"d"}}"#,
            r#"{"level":"INFO","message":"logging initialised"}"#,
            "not json",
        ];
        let d = decisions(&[lines.join("\n")]);
        assert_eq!(d.len(), 4);
        assert_eq!(d["a"], Served::Memory);
        assert_eq!(d["b"], Served::Fleet);
        assert_eq!(d["c"], Served::Fetched("leased".into()));
        assert_eq!(d["d"], Served::Fetched("-".into()));
    }

    #[test]
    fn fetches_are_counted_per_window_and_bounded_by_the_span() {
        let s = |ms: u64, served: Served| Sample {
            instance: 0,
            started: Duration::from_millis(ms),
            took: Duration::from_millis(10),
            served,
            token_digest: format!("{ms}"),
        };
        let fetched = || Served::Fetched("leased".into());
        let run = FleetRun {
            instances: 1,
            fleet: true,
            reuse_window: Duration::from_secs(3),
            windows: 2,
            samples: vec![
                s(0, fetched()),
                s(1_000, Served::Memory),
                s(3_100, fetched()),
                s(6_500, Served::Fleet),
                Sample { token_digest: "6500".into(), ..s(6_600, Served::Fleet) },
            ],
            cognito_calls: 2,
            warnings: vec![],
            secret_in_logs: false,
        };
        assert_eq!(run.fetches_by_window(), vec![1, 1, 0]);
        assert_eq!(run.windows_bound(), 3);
        assert_eq!(run.fetches_per_window(), 2.0 / 3.0);
        assert_eq!(run.distinct_tokens(), 4);
        let l = run.latencies();
        assert_eq!((l.memory.len(), l.fleet_first.len(), l.fleet_again.len(), l.fleet_waited.len()), (1, 1, 1, 0));
        assert_eq!(l.fetch.len(), 2);
        assert_eq!(percentile(&l.fetch, 50.0), Some(Duration::from_millis(10)));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
