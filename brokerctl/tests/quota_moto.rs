//! `brokerctl quota show | reset` on moto's DynamoDB (`scripts/with-moto.sh` exports `TB_MOTO_ENDPOINT`; these tests
//! fail, never skip, without it).
//!
//! The counters are charged by the broker's own quota store ([`DynamoQuotaStore`]) against the same table, so what
//! `show` reads and `reset` deletes is in the format the broker writes; after a reset the broker's next charge
//! counts from zero again.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use aws_sdk_dynamodb::types::AttributeValue;
use brokerctl::quota::{reset, show, QuotaCmdError};
use serde_json::Value;
use tb_broker::quota_table::{counter_key, KEY_ATTR};
use tb_broker::{DynamoQuotaConfig, DynamoQuotaStore, QuotaOutcome, QuotaStore};
use tb_devkit::moto;
use tb_shared::ids::CallerId;
use tb_shared::policy::Policy;

const POLICY: &str = r#"version: 1
callers:
  - id: orders
    identities: [{ type: san_dns, value: orders.svc.example }]
    cognito_client: orders
    allowed_scopes: [api/read]
    default_scopes: [api/read]
    quotas:
      - { per: minute, limit: 5 }
      - { per: day, limit: 10 }
    max_token_lifetime_seconds: 3600
  - id: reporting
    identities: [{ type: san_dns, value: reporting.svc.example }]
    cognito_client: reporting
    allowed_scopes: [api/read]
    default_scopes: [api/read]
    quotas:
      - { per: day, limit: 3 }
    max_token_lifetime_seconds: 3600
  - id: free
    identities: [{ type: san_dns, value: free.svc.example }]
    cognito_client: free
    allowed_scopes: [api/read]
    default_scopes: [api/read]
    quotas: unlimited
    max_token_lifetime_seconds: 3600
"#;

const DAY: Duration = Duration::from_secs(86_400);

struct Fixture {
    ddb: aws_sdk_dynamodb::Client,
    store: DynamoQuotaStore,
    table: String,
    policy: Policy,
    dir: tempfile::TempDir,
}

impl Fixture {
    async fn new() -> Fixture {
        let sdk = moto::sdk_config().await;
        let table = moto::unique("quota");
        moto::create_quota_table(&sdk, &table).await;
        let mut config = DynamoQuotaConfig::new(table.clone());
        config.operation_timeout = Duration::from_secs(20);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("policy.yaml"), POLICY).unwrap();
        let policy = Policy::load(&dir.path().join("policy.yaml")).unwrap();
        Fixture {
            ddb: aws_sdk_dynamodb::Client::new(&sdk),
            store: DynamoQuotaStore::from_sdk_config(&sdk, config),
            table,
            policy,
            dir,
        }
    }

    fn policy_path(&self) -> String {
        self.dir.path().join("policy.yaml").display().to_string()
    }

    /// Charges `n` grants to `caller` at `now` the way the broker does.
    async fn charge(&self, caller: &str, n: usize, now: SystemTime) {
        let id = CallerId::try_from(caller).unwrap();
        let windows = &self.policy.caller(&id).unwrap().quotas;
        for _ in 0..n {
            let out = self.store.try_charge(&id, windows, now).await.unwrap();
            assert!(matches!(out, QuotaOutcome::Granted(_)), "{out:?}");
        }
    }

    /// Every item of the table: key to grants.
    async fn items(&self) -> HashMap<String, String> {
        let out = self.ddb.scan().table_name(&self.table).send().await.unwrap();
        out.items()
            .iter()
            .map(|i| {
                let key = i[KEY_ATTR].as_s().unwrap().clone();
                let grants = i.get("grants").and_then(|v| v.as_n().ok()).cloned().unwrap_or_default();
                (key, grants)
            })
            .collect()
    }

    fn brokerctl(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_brokerctl"))
            .args(args)
            .args(["--policy", &self.policy_path(), "--table", &self.table, "--endpoint", &moto::endpoint()])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.code().unwrap_or(-1), stdout, String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn window<'a>(u: &'a brokerctl::quota::QuotaUsage, name: &str) -> &'a brokerctl::quota::WindowUsage {
    u.windows.iter().find(|w| w.window == name).unwrap_or_else(|| panic!("no window {name}: {u:?}"))
}

#[tokio::test]
async fn show_reads_what_the_broker_charged_and_reset_clears_only_the_window_asked_for() {
    let f = Fixture::new().await;
    // 20 s into a minute, so "now" and the minute's reset are known exactly.
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_900_000_000 / 60 * 60 + 20);
    f.charge("orders", 3, now).await;
    f.charge("orders", 4, now - DAY).await;
    f.charge("reporting", 2, now).await;

    let u = show(&f.ddb, &f.table, &f.policy, "orders", now).await.unwrap();
    assert_eq!(u.caller, "orders");
    assert!(!u.unlimited);
    assert_eq!(u.windows.len(), 2);
    let minute = window(&u, "minute");
    assert_eq!((minute.used, minute.limit, minute.length_seconds), (3, 5, 60));
    assert_eq!(minute.resets_in_seconds, 40);
    let id = CallerId::try_from("orders").unwrap();
    assert_eq!(minute.key, counter_key(&id, Duration::from_secs(60), minute.window_start));
    let day = window(&u, "day");
    assert_eq!((day.used, day.limit), (3, 10), "yesterday's 4 grants are another item");
    let day_end = (1_900_000_000 / 60 * 60 + 20) / 86_400 * 86_400 + 86_400;
    assert_eq!(day.resets_in_seconds, day_end - (1_900_000_000 / 60 * 60 + 20));
    let expected = time::OffsetDateTime::from_unix_timestamp(day_end as i64).unwrap();
    assert_eq!(day.resets_at, expected.format(&time::format_description::well_known::Rfc3339).unwrap());
    assert!(day.resets_at.ends_with('Z'), "{}", day.resets_at);

    let before = f.items().await;
    let done = reset(&f.ddb, &f.table, &f.policy, "orders", Some("minute"), now).await.unwrap();
    assert_eq!(done.len(), 1);
    assert_eq!((done[0].window.as_str(), done[0].previous), ("minute", 3));
    let after = f.items().await;
    let mut expected = before.clone();
    expected.remove(&minute.key);
    assert_eq!(after, expected, "only the current minute's item is gone");

    let u = show(&f.ddb, &f.table, &f.policy, "orders", now).await.unwrap();
    assert_eq!((window(&u, "minute").used, window(&u, "day").used), (0, 3));

    // The broker counts from zero again in the reset window.
    f.charge("orders", 1, now).await;
    let u = show(&f.ddb, &f.table, &f.policy, "orders", now).await.unwrap();
    assert_eq!((window(&u, "minute").used, window(&u, "day").used), (1, 4));

    // Every window: both current items go, yesterday's and the other caller's stay.
    let done = reset(&f.ddb, &f.table, &f.policy, "orders", None, now).await.unwrap();
    let previous: Vec<(&str, u64)> = done.iter().map(|r| (r.window.as_str(), r.previous)).collect();
    assert_eq!(previous, [("minute", 1), ("day", 4)]);
    let left = f.items().await;
    assert_eq!(left.len(), 3, "yesterday's minute and day, reporting's day: {left:?}");
    assert!(!left.contains_key(&minute.key) && !left.contains_key(&day.key), "{left:?}");
    let reporting = show(&f.ddb, &f.table, &f.policy, "reporting", now).await.unwrap();
    assert_eq!(window(&reporting, "day").used, 2);
    let yesterday = show(&f.ddb, &f.table, &f.policy, "orders", now - DAY).await.unwrap();
    assert_eq!(window(&yesterday, "day").used, 4);

    // Resetting a window with no item reports 0 and changes nothing.
    let done = reset(&f.ddb, &f.table, &f.policy, "orders", Some("day"), now).await.unwrap();
    assert_eq!(done[0].previous, 0);
    assert_eq!(f.items().await, left);
}

#[tokio::test]
async fn unknown_callers_and_windows_are_usage_errors_and_a_caller_without_items_shows_zero() {
    let f = Fixture::new().await;
    let now = SystemTime::now();
    let e = show(&f.ddb, &f.table, &f.policy, "nobody", now).await.unwrap_err();
    assert!(matches!(&e, QuotaCmdError::Usage(m) if m.contains("not in the policy")), "{e}");
    let e = show(&f.ddb, &f.table, &f.policy, "bad#id", now).await.unwrap_err();
    assert!(matches!(e, QuotaCmdError::Usage(_)), "{e}");
    let e = reset(&f.ddb, &f.table, &f.policy, "reporting", Some("minute"), now).await.unwrap_err();
    assert!(matches!(&e, QuotaCmdError::Usage(m) if m.contains("its windows: day")), "{e}");

    let u = show(&f.ddb, &f.table, &f.policy, "reporting", now).await.unwrap();
    assert_eq!(window(&u, "day").used, 0);
    let free = show(&f.ddb, &f.table, &f.policy, "free", now).await.unwrap();
    assert!(free.unlimited && free.windows.is_empty());
    assert!(reset(&f.ddb, &f.table, &f.policy, "free", None, now).await.unwrap().is_empty());

    // An item the broker would not write is an error, not a guess.
    let key = counter_key(&CallerId::try_from("reporting").unwrap(), DAY, u.windows[0].window_start);
    f.ddb
        .put_item()
        .table_name(&f.table)
        .item(KEY_ATTR, AttributeValue::S(key))
        .item("grants", AttributeValue::S("three".into()))
        .send()
        .await
        .unwrap();
    let e = show(&f.ddb, &f.table, &f.policy, "reporting", now).await.unwrap_err();
    assert!(matches!(e, QuotaCmdError::Failed(_)), "{e}");
}

#[tokio::test]
async fn the_binary_shows_and_resets_with_json_and_exit_codes() {
    let f = Fixture::new().await;
    f.charge("reporting", 2, SystemTime::now()).await;

    let (code, out, err) = f.brokerctl(&["quota", "show", "reporting", "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["caller"], "reporting");
    assert_eq!(v["windows"][0]["window"], "day");
    assert_eq!(v["windows"][0]["used"], 2);
    assert_eq!(v["windows"][0]["limit"], 3);
    assert!(v["windows"][0]["resets_in_seconds"].as_u64().is_some_and(|s| s > 0 && s <= 86_400), "{out}");
    assert!(v["windows"][0]["resets_at"].as_str().is_some_and(|s| s.ends_with('Z')), "{out}");

    let (code, out, err) = f.brokerctl(&["quota", "show", "reporting"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("day") && out.contains("used      2 of 3"), "{out}");

    let (code, out, err) = f.brokerctl(&["quota", "reset", "reporting", "--window", "day", "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["reset"][0]["window"], "day");
    assert_eq!(v["reset"][0]["previous"], 2);
    assert_eq!(v["after"]["windows"][0]["used"], 0);

    let (code, out, err) = f.brokerctl(&["quota", "reset", "reporting"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("reset reporting window day: 0 grant(s) cleared"), "{out}");

    let (code, _, err) = f.brokerctl(&["quota", "show", "nobody"]);
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("not in the policy"), "{err}");
    let (code, _, err) = f.brokerctl(&["quota", "reset", "reporting", "--window", "minute"]);
    assert_eq!(code, 64, "{err}");
    let missing = Path::new("/nonexistent/policy.yaml").display().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_brokerctl"))
        .args(["quota", "show", "reporting", "--policy", &missing, "--table", &f.table])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
