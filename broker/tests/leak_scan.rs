//! Leak scan: run the broker's scenarios with every log line, EMF line, error body and panic message captured, then
//! search the captures for every client secret, every issued access token, every `Authorization: Basic` value and
//! the caller-hash key. Any hit fails.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::*;
use tb_shared::telemetry::{capture_default, CaptureWriter};

const GRANT: &str = "grant_type=client_credentials";

/// Everything that must never appear in a capture.
struct Secrets {
    values: Vec<(String, String)>,
}

impl Secrets {
    fn add(&mut self, what: &str, v: &str) {
        if !v.is_empty() {
            self.values.push((what.to_owned(), v.to_owned()));
        }
    }
    fn add_harness(&mut self, h: &Harness) {
        for s in &h.secrets {
            self.add("client secret", s);
            for (_, id, _) in APP_CLIENTS {
                self.add("basic value", &basic_value(id, s));
            }
        }
    }
    fn assert_absent(&self, where_: &str, text: &str) {
        for (what, v) in &self.values {
            assert!(!text.contains(v.as_str()), "{what} found in {where_}");
        }
        assert!(!text.contains("Basic "), "an Authorization value found in {where_}");
    }
}

/// Runs `scenario` with logs captured on this thread's subscriber, collecting every reply body and token.
async fn run_captured<F, Fut>(opts: Options, scenario: F) -> (Harness, CaptureWriter, Vec<Reply>)
where
    F: FnOnce(Arc<Mutex<Vec<Reply>>>, Arc<Mutex<Option<Harness>>>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let logs = CaptureWriter::default();
    let _guard = capture_default(logs.clone());
    let h = Arc::new(Mutex::new(Some(Harness::with(opts).await)));
    let replies = Arc::new(Mutex::new(Vec::new()));
    scenario(replies.clone(), h.clone()).await;
    let h = h.lock().unwrap().take().unwrap();
    let replies = std::mem::take(&mut *replies.lock().unwrap());
    (h, logs, replies)
}

/// Calls the harness held in the shared slot (the slot lets a scenario rotate secrets between calls).
async fn call(h: &Arc<Mutex<Option<Harness>>>, req: aws_lambda_events::apigw::ApiGatewayProxyRequest) -> Reply {
    // The harness is only touched from this one test thread; take it out for the await and put it back.
    let harness = h.lock().unwrap().take().unwrap();
    let r = harness.send(req).await;
    *h.lock().unwrap() = Some(harness);
    r
}

fn with<T>(h: &Arc<Mutex<Option<Harness>>>, f: impl FnOnce(&mut Harness) -> T) -> T {
    f(h.lock().unwrap().as_mut().unwrap())
}

#[tokio::test]
async fn no_secret_token_or_authorization_value_in_logs_metrics_bodies_or_panics() {
    let panics = CaptureWriter::default();
    {
        let panics = panics.clone();
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            use std::io::Write as _;
            let _ = writeln!(panics.clone(), "{info}");
            previous(info);
        }));
    }

    let opts = Options {
        attempt_timeout: Duration::from_millis(300),
        breaker_threshold: 3,
        breaker_open: Duration::from_millis(200),
        ..Options::default()
    };
    let (h, logs, replies) = run_captured(opts, |replies, h| async move {
        let push = |r: Reply| replies.lock().unwrap().push(r);
        // Grants, with and without reuse.
        push(call(&h, request(Some("order-svc"), "grant_type=client_credentials&scope=api%2Fwrite")).await);
        push(call(&h, request(Some("reuse-svc"), GRANT)).await);
        push(call(&h, request(Some("reuse-svc"), GRANT)).await);
        // A caller that pastes a real secret into the body, and a forged Authorization header.
        let secret = with(&h, |h| h.secrets[0].clone());
        let mut req = request(Some("order-svc"), &format!("grant_type=client_credentials&client_secret={secret}"));
        req.headers
            .insert("authorization", format!("Basic {}", basic_value("orders-client", &secret)).parse().unwrap());
        push(call(&h, req).await);
        // Refusals of every kind.
        push(call(&h, request(Some("order-svc"), "grant_type=client_credentials&scope=api%2Fadmin")).await);
        push(call(&h, request(Some("order-svc"), "grant_type=client_credentials&client_id=other-svc")).await);
        push(call(&h, request(None, GRANT)).await);
        push(call(&h, request(Some("disabled-svc"), GRANT)).await);
        push(call(&h, request(Some("short-svc"), GRANT)).await);
        for _ in 0..4 {
            push(call(&h, request(Some("limited-svc"), GRANT)).await);
        }
        // Rotated secret: refetched and served; then refused even after the refetch.
        with(&h, |h| h.rotate("orders", true));
        push(call(&h, request(Some("order-svc"), GRANT)).await);
        with(&h, |h| h.rotate("others", false));
        push(call(&h, request(Some("other-svc"), GRANT)).await);
        // Stores down.
        with(&h, |h| h.quotas.set_unavailable(true));
        push(call(&h, request(Some("order-svc"), GRANT)).await);
        with(&h, |h| h.quotas.set_unavailable(false));
        with(&h, |h| h.store.set_unavailable(true));
        push(call(&h, request(Some("reuse-svc"), "grant_type=client_credentials&scope=api%2Fread")).await);
        with(&h, |h| h.store.set_unavailable(false));
        // Cognito slow, then down until the breaker opens, then back.
        with(&h, |h| h.standin.faults().set_delay(Duration::from_secs(3)));
        push(call(&h, request(Some("order-svc"), GRANT)).await);
        with(&h, |h| h.standin.faults().clear());
        with(&h, |h| h.standin.faults().fail_all(500));
        for _ in 0..3 {
            push(call(&h, request(Some("order-svc"), GRANT)).await);
        }
        with(&h, |h| h.standin.faults().clear());
        tokio::time::sleep(Duration::from_millis(300)).await;
        push(call(&h, request(Some("order-svc"), GRANT)).await);
    })
    .await;

    let mut secrets = Secrets { values: Vec::new() };
    secrets.add_harness(&h);
    let granted: Vec<&Reply> = replies.iter().filter(|r| r.status == 200).collect();
    assert!(granted.len() >= 5, "the scenarios must issue tokens to scan for: {}", granted.len());
    for r in &granted {
        secrets.add("access token", r.token());
    }
    let statuses: std::collections::BTreeSet<i64> = replies.iter().map(|r| r.status).collect();
    for s in [200, 400, 401, 403, 429, 500, 502, 503] {
        assert!(statuses.contains(&s), "scenario set must produce a {s}: {statuses:?}");
    }

    let log_text = logs.contents();
    assert!(log_text.contains("token granted") && log_text.contains("token request refused"), "logs captured");
    secrets.assert_absent("logs", &log_text);
    let emf_text = h.emf.contents();
    assert!(emf_text.contains("\"Grants\""), "EMF captured");
    secrets.assert_absent("EMF lines", &emf_text);
    for r in replies.iter().filter(|r| r.status != 200) {
        secrets.assert_absent("an error body", &r.body);
    }
    secrets.assert_absent("panic messages", &panics.contents());
    let creds = tb_broker::CredentialSource::get(&*h.store, "orders").await;
    secrets.assert_absent("Debug of credentials", &format!("{creds:?}"));
    for line in log_text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("every log line is JSON");
        assert!(v.get("body").is_none() && v.get("headers").is_none(), "no event parts in logs: {line}");
    }
}

/// GIVEN the policy asks for hashed caller ids THEN no log line or EMF line carries the caller id itself, but the
/// decision is still logged with its keyed hash.
#[tokio::test]
async fn hashed_caller_ids_keep_the_id_out_of_logs() {
    let (h, logs, replies) =
        run_captured(Options { hash_caller_ids: true, ..Options::default() }, |replies, h| async move {
            let granted = call(&h, request(Some("order-svc"), GRANT)).await;
            let refused = call(&h, request(Some("order-svc"), "grant_type=x")).await;
            let mut guard = replies.lock().unwrap();
            guard.extend([granted, refused]);
            drop(guard);
        })
        .await;
    assert_eq!(replies[0].status, 200);
    let text = logs.contents();
    assert!(text.contains("\"caller\":\"h:"), "decision logged with the hashed id");
    assert!(!text.contains("order-svc"), "raw caller id in logs");
    assert!(!h.emf.contents().contains("order-svc"), "raw caller id in EMF");
    assert!(!text.contains("test-caller-hash-key"), "hash key in logs");
}
