//! NOT FOR PRODUCTION. A small implementation of the AWS Lambda Runtime API (2018-06-01) for tests: the real function
//! binaries run against it exactly as they run in Lambda (`AWS_LAMBDA_RUNTIME_API=host:port`), and a test invokes
//! them with an event and reads what they answered.
//!
//! Endpoints (all on 127.0.0.1, port chosen by the OS):
//! - `GET  /2018-06-01/runtime/invocation/next`: long-poll; answers the next queued event with the headers
//!   `Lambda-Runtime-Aws-Request-Id`, `Lambda-Runtime-Deadline-Ms`, `Lambda-Runtime-Invoked-Function-Arn` and
//!   `Lambda-Runtime-Trace-Id`;
//! - `POST /2018-06-01/runtime/invocation/{id}/response`: the function's answer;
//! - `POST /2018-06-01/runtime/invocation/{id}/error`: the function's error (`errorType`, `errorMessage`);
//! - `POST /2018-06-01/runtime/init/error`: the function could not start.
//!
//! [`FunctionProcess`] runs a function binary with the environment Lambda gives it, captures its output and kills it
//! when dropped, so no test leaves a process behind.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use tb_devkit::runtime_api::{lambda_env, FunctionProcess, Outcome, RuntimeApi};
//! let api = RuntimeApi::start().await?;
//! let mut env = lambda_env(&api, "authorizer");
//! env.push(("POLICY_FILE".into(), "/tmp/policy.yaml".into()));
//! let _fn = FunctionProcess::spawn("target/debug/authorizer".as_ref(), &env)?;
//! let outcome = api.invoke(&serde_json::json!({"type": "REQUEST"}), Duration::from_secs(10)).await?;
//! assert!(matches!(outcome, Outcome::Error { .. }));
//! # Ok(()) }
//! ```

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State as AxState};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::sync::{oneshot, watch, Notify};

mod process;

pub use process::{assert_init_error, function_binary, function_runner, lambda_env, FunctionProcess, InitWait};

/// The API version prefix every path starts with.
pub const API_PREFIX: &str = "/2018-06-01/runtime";

/// The ARN the emulator reports as the invoked function's, unless [`RuntimeApi::start_with_arn`] names another.
pub const DEFAULT_FUNCTION_ARN: &str = "arn:aws:lambda:eu-west-1:123456789012:function:token-broker-test";

/// What the function answered to one invocation.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// `POST .../invocation/{id}/response`: the body, as JSON (a body that is not JSON is kept as a JSON string).
    Response(Value),
    /// `POST .../invocation/{id}/error`.
    Error { error_type: String, error_message: String },
}

/// Why [`RuntimeApi::invoke`] has no [`Outcome`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InvokeError {
    /// The function never asked for the event (it did not start, or is still busy with another one).
    #[error("the function did not fetch the event within {0:?}")]
    NotFetched(Duration),
    /// The function took the event but answered neither a response nor an error in time.
    #[error("the function fetched the event but did not answer within {0:?}")]
    NoAnswer(Duration),
    /// The function reported that it could not start.
    #[error("the function reported an init error: {error_type}: {error_message}")]
    InitError { error_type: String, error_message: String },
    /// The event could not be serialised.
    #[error("event: {0}")]
    Event(String),
}

/// A queued invocation.
struct Invocation {
    id: String,
    body: Vec<u8>,
    deadline_ms: u64,
    answer: oneshot::Sender<Outcome>,
}

#[derive(Default)]
struct Queues {
    /// Events not yet fetched by the function.
    queued: VecDeque<Invocation>,
    /// Events fetched and not yet answered, by request id.
    in_flight: HashMap<String, oneshot::Sender<Outcome>>,
    /// Request ids fetched so far (so a test can tell "never fetched" from "fetched, no answer").
    fetched: Vec<String>,
}

struct State {
    function_arn: String,
    queues: StdMutex<Queues>,
    event_ready: Notify,
    init_error: watch::Sender<Option<(String, String)>>,
    shutdown: watch::Sender<bool>,
    polls: AtomicU64,
    /// When the first `GET .../invocation/next` arrived (see [`RuntimeApi::first_poll_at`]).
    first_poll: OnceLock<Instant>,
    next_id: AtomicU64,
}

impl State {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queues> {
        // A panic while holding this lock can only come from this module's own bookkeeping; the data stays usable.
        tb_shared::sync::lock(&self.queues)
    }
}

/// A running Runtime API emulator. Dropping it stops the server and makes pending long-polls answer 500, so a
/// function still running against it gets an error instead of waiting for ever.
pub struct RuntimeApi {
    addr: SocketAddr,
    state: Arc<State>,
    server: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for RuntimeApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeApi").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl RuntimeApi {
    /// Starts the emulator on 127.0.0.1 with an OS-chosen port.
    pub async fn start() -> std::io::Result<RuntimeApi> {
        Self::start_with_arn(DEFAULT_FUNCTION_ARN).await
    }

    /// Starts the emulator, reporting `function_arn` as the invoked function's ARN.
    pub async fn start_with_arn(function_arn: &str) -> std::io::Result<RuntimeApi> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (init_error, _) = watch::channel(None);
        let (shutdown, _) = watch::channel(false);
        let state = Arc::new(State {
            function_arn: function_arn.to_owned(),
            queues: StdMutex::new(Queues::default()),
            event_ready: Notify::new(),
            init_error,
            shutdown,
            polls: AtomicU64::new(0),
            first_poll: OnceLock::new(),
            next_id: AtomicU64::new(1),
        });
        let app = Router::new()
            .route(&format!("{API_PREFIX}/invocation/next"), get(next))
            .route(&format!("{API_PREFIX}/invocation/{{id}}/response"), post(response))
            .route(&format!("{API_PREFIX}/invocation/{{id}}/error"), post(error))
            .route(&format!("{API_PREFIX}/init/error"), post(init_error_route))
            .fallback(|| async { (StatusCode::NOT_FOUND, Json(json!({"errorType": "NotFound"}))) })
            .with_state(state.clone());
        let mut stop = state.shutdown.subscribe();
        let server = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            });
            if let Err(e) = serve.await {
                tracing::warn!(error = %e, "runtime API emulator stopped");
            }
        });
        Ok(RuntimeApi { addr, state, server })
    }

    /// The address to give the function as `AWS_LAMBDA_RUNTIME_API` (`host:port`, no scheme).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `AWS_LAMBDA_RUNTIME_API`'s value.
    pub fn runtime_api_env(&self) -> String {
        self.addr.to_string()
    }

    /// How many times the function has called `GET .../invocation/next` (1 after a cold start that succeeded).
    pub fn polls(&self) -> u64 {
        self.state.polls.load(Ordering::SeqCst)
    }

    /// When the function first called `GET .../invocation/next`, stamped by the emulator as the request reached its
    /// handler; `None` before that. [`RuntimeApi::wait_ready`] only looks every 20 ms, too coarse to time a cold
    /// start of a few milliseconds: the `*_lambda_process` examples subtract their spawn instant from this one.
    pub fn first_poll_at(&self) -> Option<Instant> {
        self.state.first_poll.get().copied()
    }

    /// Waits up to `timeout` until the function has asked for its first event, i.e. finished its cold start.
    pub async fn wait_ready(&self, timeout: Duration) -> bool {
        let until = Instant::now() + timeout;
        while Instant::now() < until {
            if self.polls() > 0 {
                return true;
            }
            if self.state.init_error.borrow().is_some() {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.polls() > 0
    }

    /// Queues `event` and waits up to `timeout` for the function's response or error. The invocation's deadline
    /// (`Lambda-Runtime-Deadline-Ms`) is now + `timeout`. Returns early with [`InvokeError::InitError`] if the
    /// function reports an init error meanwhile.
    pub async fn invoke(&self, event: &Value, timeout: Duration) -> Result<Outcome, InvokeError> {
        let body = serde_json::to_vec(event).map_err(|e| InvokeError::Event(e.to_string()))?;
        self.invoke_raw(body, timeout).await
    }

    /// [`RuntimeApi::invoke`] with the event's bytes as they are (for events that are not valid JSON).
    pub async fn invoke_raw(&self, body: Vec<u8>, timeout: Duration) -> Result<Outcome, InvokeError> {
        let n = self.state.next_id.fetch_add(1, Ordering::SeqCst);
        let id = format!("{:08x}-0000-4000-8000-{:012x}", rand::random::<u32>(), n);
        let deadline_ms = epoch_ms(SystemTime::now() + timeout);
        let (tx, rx) = oneshot::channel();
        self.state.lock().queued.push_back(Invocation { id: id.clone(), body, deadline_ms, answer: tx });
        self.state.event_ready.notify_one();

        let mut init = self.state.init_error.subscribe();
        let outcome = tokio::select! {
            answer = tokio::time::timeout(timeout, rx) => match answer {
                Ok(Ok(outcome)) => Ok(outcome),
                // The sender is dropped only when the emulator itself goes away.
                Ok(Err(_)) | Err(_) => Err(timeout),
            },
            reported = init.wait_for(|e| e.is_some()) => match reported {
                Ok(e) => match e.clone() {
                    Some((error_type, error_message)) => return self.forget(&id, Err(InvokeError::InitError { error_type, error_message })),
                    None => Err(timeout),
                },
                Err(_) => Err(timeout),
            },
        };
        match outcome {
            Ok(o) => Ok(o),
            Err(t) => {
                let fetched = self.state.lock().fetched.iter().any(|f| f == &id);
                let e = if fetched { InvokeError::NoAnswer(t) } else { InvokeError::NotFetched(t) };
                self.forget(&id, Err(e))
            }
        }
    }

    /// Drops an invocation that has no answer, so a late fetch does not see a stale event.
    fn forget<T>(&self, id: &str, result: T) -> T {
        let mut q = self.state.lock();
        q.queued.retain(|i| i.id != id);
        q.in_flight.remove(id);
        result
    }

    /// Waits up to `timeout` for the function to report an init error; returns its `(errorType, errorMessage)`.
    pub async fn init_error(&self, timeout: Duration) -> Option<(String, String)> {
        let mut rx = self.state.init_error.subscribe();
        let reported = match tokio::time::timeout(timeout, rx.wait_for(|e| e.is_some())).await {
            Ok(Ok(e)) => e.clone(),
            _ => None,
        };
        reported
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.state.shutdown.send_replace(true);
        self.state.event_ready.notify_waiters();
        self.server.abort();
    }
}

fn epoch_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn problem(status: StatusCode, error_type: &str, message: &str) -> Response {
    (status, Json(json!({ "errorType": error_type, "errorMessage": message }))).into_response()
}

/// `GET /invocation/next`: waits for an event (or for the emulator to stop).
async fn next(AxState(state): AxState<Arc<State>>) -> Response {
    state.first_poll.get_or_init(Instant::now);
    state.polls.fetch_add(1, Ordering::SeqCst);
    let mut stop = state.shutdown.subscribe();
    loop {
        let notified = state.event_ready.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let taken = {
            let mut q = state.lock();
            match q.queued.pop_front() {
                Some(inv) => {
                    q.fetched.push(inv.id.clone());
                    q.in_flight.insert(inv.id.clone(), inv.answer);
                    Some((inv.id, inv.body, inv.deadline_ms))
                }
                None => None,
            }
        };
        if let Some((id, body, deadline_ms)) = taken {
            let mut headers = HeaderMap::new();
            let mut put = |name: &'static str, value: String| {
                if let Ok(v) = HeaderValue::from_str(&value) {
                    headers.insert(name, v);
                }
            };
            put("lambda-runtime-aws-request-id", id.clone());
            put("lambda-runtime-deadline-ms", deadline_ms.to_string());
            put("lambda-runtime-invoked-function-arn", state.function_arn.clone());
            put(
                "lambda-runtime-trace-id",
                format!(
                    "Root=1-{:08x}-{:024x};Parent={:016x};Sampled=0",
                    epoch_ms(SystemTime::now()) / 1000,
                    rand::random::<u128>() >> 32,
                    rand::random::<u64>()
                ),
            );
            put("content-type", "application/json".into());
            return (StatusCode::OK, headers, body).into_response();
        }
        if *stop.borrow() {
            return problem(StatusCode::INTERNAL_SERVER_ERROR, "Emulator.Stopped", "the runtime API emulator stopped");
        }
        tokio::select! {
            _ = notified => {}
            _ = stop.wait_for(|s| *s) => {}
        }
    }
}

fn answer(state: &State, id: &str, outcome: Outcome) -> Response {
    let sender = state.lock().in_flight.remove(id);
    match sender {
        Some(tx) => {
            // The invoker may have given up already; the answer is then simply dropped.
            let _ = tx.send(outcome);
            (StatusCode::ACCEPTED, Json(json!({"status": "OK"}))).into_response()
        }
        None => problem(StatusCode::BAD_REQUEST, "InvalidRequestID", "unknown or already answered request id"),
    }
}

/// `POST /invocation/{id}/response`.
async fn response(AxState(state): AxState<Arc<State>>, UrlPath(id): UrlPath<String>, body: Bytes) -> Response {
    let value = serde_json::from_slice::<Value>(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    answer(&state, &id, Outcome::Response(value))
}

/// Reads `errorType`/`errorMessage` from an error body, falling back to the
/// `Lambda-Runtime-Function-Error-Type` header and the raw body.
fn error_of(headers: &HeaderMap, body: &[u8]) -> (String, String) {
    let header_type =
        headers.get("lambda-runtime-function-error-type").and_then(|v| v.to_str().ok()).map(str::to_owned);
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => {
            let error_type = v
                .get("errorType")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .or(header_type)
                .unwrap_or_else(|| "Unhandled".into());
            let error_message = v.get("errorMessage").and_then(Value::as_str).unwrap_or_default().to_owned();
            (error_type, error_message)
        }
        Err(_) => (header_type.unwrap_or_else(|| "Unhandled".into()), String::from_utf8_lossy(body).into_owned()),
    }
}

/// `POST /invocation/{id}/error`.
async fn error(
    AxState(state): AxState<Arc<State>>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (error_type, error_message) = error_of(&headers, &body);
    answer(&state, &id, Outcome::Error { error_type, error_message })
}

/// `POST /init/error`.
async fn init_error_route(AxState(state): AxState<Arc<State>>, headers: HeaderMap, body: Bytes) -> Response {
    let reported = error_of(&headers, &body);
    state.init_error.send_replace(Some(reported));
    (StatusCode::ACCEPTED, Json(json!({"status": "OK"}))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> reqwest::Client {
        reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap()
    }

    /// A minimal function loop written against the HTTP API: fetch, then answer with `answer(event)`.
    async fn fake_function(base: String, answer: fn(&Value) -> (bool, Value)) {
        let c = reqwest::Client::builder().build().unwrap();
        loop {
            let Ok(r) = c.get(format!("{base}/invocation/next")).send().await else { return };
            if !r.status().is_success() {
                return;
            }
            let id = r.headers()["lambda-runtime-aws-request-id"].to_str().unwrap().to_owned();
            assert!(r.headers()["lambda-runtime-deadline-ms"].to_str().unwrap().parse::<u64>().is_ok());
            assert_eq!(r.headers()["lambda-runtime-invoked-function-arn"], DEFAULT_FUNCTION_ARN);
            assert!(r.headers()["lambda-runtime-trace-id"].to_str().unwrap().starts_with("Root=1-"));
            let event: Value = r.json().await.unwrap();
            let (ok, body) = answer(&event);
            let path = if ok { "response" } else { "error" };
            let s = c.post(format!("{base}/invocation/{id}/{path}")).json(&body).send().await.unwrap();
            assert_eq!(s.status(), 202);
        }
    }

    #[tokio::test]
    async fn invoke_round_trips_responses_and_errors() {
        let api = RuntimeApi::start().await.unwrap();
        assert_eq!(api.first_poll_at(), None);
        let started = Instant::now();
        let base = format!("http://{}{API_PREFIX}", api.addr());
        let f = tokio::spawn(fake_function(base, |e| {
            if e["fail"] == true {
                (false, json!({"errorType": "Boom", "errorMessage": "it failed"}))
            } else {
                (true, json!({"echo": e["n"]}))
            }
        }));
        for n in 0..3 {
            let o = api.invoke(&json!({"n": n}), Duration::from_secs(5)).await.unwrap();
            assert_eq!(o, Outcome::Response(json!({"echo": n})));
        }
        let o = api.invoke(&json!({"fail": true}), Duration::from_secs(5)).await.unwrap();
        assert_eq!(o, Outcome::Error { error_type: "Boom".into(), error_message: "it failed".into() });
        assert!(api.polls() >= 4);
        assert!(api.first_poll_at().is_some_and(|t| t >= started && t <= Instant::now()));
        drop(api);
        tokio::time::timeout(Duration::from_secs(5), f).await.expect("the long-poll ends when the emulator stops").ok();
    }

    #[tokio::test]
    async fn no_function_means_not_fetched_and_a_stale_event_is_not_served_later() {
        let api = RuntimeApi::start().await.unwrap();
        let e = api.invoke(&json!({"stale": true}), Duration::from_millis(100)).await.unwrap_err();
        assert_eq!(e, InvokeError::NotFetched(Duration::from_millis(100)));
        let base = format!("http://{}{API_PREFIX}", api.addr());
        tokio::spawn(fake_function(base, |e| (true, e.clone())));
        let o = api.invoke(&json!({"fresh": true}), Duration::from_secs(5)).await.unwrap();
        assert_eq!(o, Outcome::Response(json!({"fresh": true})));
    }

    #[tokio::test]
    async fn init_error_is_reported_and_ends_a_pending_invoke() {
        let api = RuntimeApi::start().await.unwrap();
        assert_eq!(api.init_error(Duration::from_millis(50)).await, None);
        let url = format!("http://{}{API_PREFIX}/init/error", api.addr());
        let event = json!({});
        let pending = api.invoke(&event, Duration::from_secs(30));
        let report = async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let r = client()
                .post(url)
                .header("Lambda-Runtime-Function-Error-Type", "Runtime.InitError")
                .json(&json!({"errorType": "Runtime.InitError", "errorMessage": "no policy"}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 202);
        };
        let started = Instant::now();
        let (outcome, ()) = tokio::join!(pending, report);
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(
            outcome.unwrap_err(),
            InvokeError::InitError { error_type: "Runtime.InitError".into(), error_message: "no policy".into() }
        );
        assert_eq!(
            api.init_error(Duration::from_millis(10)).await,
            Some(("Runtime.InitError".into(), "no policy".into()))
        );
    }

    #[tokio::test]
    async fn unknown_request_ids_and_paths_are_refused() {
        let api = RuntimeApi::start().await.unwrap();
        let base = format!("http://{}{API_PREFIX}", api.addr());
        let r = client().post(format!("{base}/invocation/nope/response")).json(&json!({})).send().await.unwrap();
        assert_eq!(r.status(), 400);
        let r = client().get(format!("http://{}/other", api.addr())).send().await.unwrap();
        assert_eq!(r.status(), 404);
    }
}
