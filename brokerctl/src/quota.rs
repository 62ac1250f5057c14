//! `brokerctl quota show | reset`: a caller's grant counters in the broker's DynamoDB quota table.
//!
//! The table holds one item per caller and window instance (`docs/quota-table.md`): the key names the caller, the
//! window's length and its epoch-aligned start, and no limit. So the limits come from the policy document, the
//! keys come from the broker's own [`counter_key`], and the current window's start is computed the way the broker
//! computes it (the multiple of the window length at or before now): what `show` reads is exactly what the next
//! charge will count against.
//!
//! `reset` deletes the current window's item (the broker starts again from zero on its next charge; a new window
//! is a new item anyway). It touches nothing but the items of the windows asked for, and reports the count each
//! held, so an operator can tell a support case what was given back.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use aws_sdk_dynamodb::Client;
use serde::Serialize;
use tb_broker::quota_table::{counter_key, COUNT_ATTR, KEY_ATTR};
use tb_shared::ids::CallerId;
use tb_shared::policy::{Policy, QuotaWindow};

/// Why a quota command could not answer.
#[derive(Debug, thiserror::Error)]
pub enum QuotaCmdError {
    /// The caller or window named is not in the policy: the command line is wrong.
    #[error("{0}")]
    Usage(String),
    /// DynamoDB failed, or holds an item the broker would not have written.
    #[error("{0}")]
    Failed(String),
}

/// One window of a caller, now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WindowUsage {
    /// The window's name in the policy (`minute`, `day`, `90s`).
    pub window: String,
    pub length_seconds: u64,
    /// Grants charged in the current window (0 when it has no item yet).
    pub used: u64,
    pub limit: u64,
    /// Start of the current window, Unix seconds.
    pub window_start: u64,
    /// When the current window ends and counting starts again, RFC 3339 UTC.
    pub resets_at: String,
    /// Seconds from now until then.
    pub resets_in_seconds: u64,
    /// The item's partition key.
    pub key: String,
}

/// Every window of one caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuotaUsage {
    pub caller: String,
    pub table: String,
    /// Which policy version the limits come from.
    pub policy_version: String,
    /// `quotas: unlimited` in the policy: no windows, nothing counted.
    pub unlimited: bool,
    pub windows: Vec<WindowUsage>,
}

impl QuotaUsage {
    /// A table for people: one line per window.
    pub fn render(&self) -> String {
        use std::fmt::Write as _;
        let mut out = format!("caller {} (table {}, policy {})\n", self.caller, self.table, self.policy_version);
        if self.unlimited {
            out.push_str("  quotas: unlimited (the broker counts nothing for this caller)\n");
        }
        for w in &self.windows {
            let _ = writeln!(
                out,
                "  {:<8} used {:>6} of {:<6} resets at {} (in {} s)",
                w.window, w.used, w.limit, w.resets_at, w.resets_in_seconds
            );
        }
        out
    }
}

/// What `reset` did to one window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WindowReset {
    pub window: String,
    pub key: String,
    /// The count the item held before it was deleted (0 when there was none).
    pub previous: u64,
}

fn rfc3339(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|d| d.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| secs.to_string())
}

/// The caller, checked against the policy.
fn caller_windows<'p>(policy: &'p Policy, caller: &str) -> Result<(CallerId, &'p [QuotaWindow]), QuotaCmdError> {
    let id = CallerId::try_from(caller).map_err(|e| QuotaCmdError::Usage(format!("caller {caller:?}: {e}")))?;
    let c = policy.caller(&id).ok_or_else(|| {
        QuotaCmdError::Usage(format!("caller {caller:?} is not in the policy (version {})", policy.version))
    })?;
    Ok((id, &c.quotas))
}

/// The current window of `w` at `now` (epoch-aligned, as the broker charges it) and its key.
fn current(caller: &CallerId, w: &QuotaWindow, now: u64) -> (u64, u64, String) {
    let len = w.length.as_secs().max(1);
    let start = now - now % len;
    (start, start.saturating_add(len), counter_key(caller, w.length, start))
}

fn count_of(item: Option<&std::collections::HashMap<String, AttributeValue>>, key: &str) -> Result<u64, QuotaCmdError> {
    let Some(value) = item.and_then(|i| i.get(COUNT_ATTR)) else { return Ok(0) };
    value
        .as_n()
        .ok()
        .and_then(|n| n.parse::<u64>().ok())
        .ok_or_else(|| QuotaCmdError::Failed(format!("item {key}: {COUNT_ATTR} is not a whole number")))
}

fn epoch(now: SystemTime) -> Result<u64, QuotaCmdError> {
    now.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .map_err(|_| QuotaCmdError::Failed("the system clock is before the Unix epoch".into()))
}

fn aws_error<E: std::error::Error + 'static>(what: &str, e: E) -> QuotaCmdError {
    QuotaCmdError::Failed(format!("{what}: {}", aws_sdk_dynamodb::error::DisplayErrorContext(&e)))
}

/// Reads every window of `caller` (strongly consistent reads, one per window).
pub async fn show(
    ddb: &Client,
    table: &str,
    policy: &Policy,
    caller: &str,
    now: SystemTime,
) -> Result<QuotaUsage, QuotaCmdError> {
    let (id, windows) = caller_windows(policy, caller)?;
    let now = epoch(now)?;
    let mut out = Vec::with_capacity(windows.len());
    for w in windows {
        let (start, end, key) = current(&id, w, now);
        let item = ddb
            .get_item()
            .table_name(table)
            .key(KEY_ATTR, AttributeValue::S(key.clone()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| aws_error(&format!("reading {key}"), e))?;
        out.push(WindowUsage {
            window: w.name.clone(),
            length_seconds: w.length.as_secs(),
            used: count_of(item.item(), &key)?,
            limit: w.limit,
            window_start: start,
            resets_at: rfc3339(end),
            resets_in_seconds: end.saturating_sub(now),
            key,
        });
    }
    Ok(QuotaUsage {
        caller: id.as_str().to_owned(),
        table: table.to_owned(),
        policy_version: policy.version.clone(),
        unlimited: windows.is_empty(),
        windows: out,
    })
}

/// Deletes the current item of one window of `caller` (by its name in the policy), or of every window.
pub async fn reset(
    ddb: &Client,
    table: &str,
    policy: &Policy,
    caller: &str,
    window: Option<&str>,
    now: SystemTime,
) -> Result<Vec<WindowReset>, QuotaCmdError> {
    let (id, windows) = caller_windows(policy, caller)?;
    let chosen: Vec<&QuotaWindow> = match window {
        None => windows.iter().collect(),
        Some(name) => {
            let w = windows.iter().find(|w| w.name == name).ok_or_else(|| {
                let names: Vec<&str> = windows.iter().map(|w| w.name.as_str()).collect();
                QuotaCmdError::Usage(format!(
                    "caller {caller} has no window {name:?} (its windows: {})",
                    if names.is_empty() { "none".to_owned() } else { names.join(", ") }
                ))
            })?;
            vec![w]
        }
    };
    let now = epoch(now)?;
    let mut out = Vec::with_capacity(chosen.len());
    for w in chosen {
        let (_, _, key) = current(&id, w, now);
        let deleted = ddb
            .delete_item()
            .table_name(table)
            .key(KEY_ATTR, AttributeValue::S(key.clone()))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| aws_error(&format!("deleting {key}"), e))?;
        out.push(WindowReset { window: w.name.clone(), previous: count_of(deleted.attributes.as_ref(), &key)?, key });
    }
    Ok(out)
}

/// The DynamoDB client of the quota commands: the standard chain, or an AWS-compatible endpoint; every call bounded
/// like the broker's own (an operator at a terminal should not wait minutes for a dead endpoint).
pub async fn client(endpoint: Option<&str>, region: Option<&str>) -> Client {
    let sdk = crate::aws::sdk_config(endpoint).await;
    let mut conf =
        aws_sdk_dynamodb::config::Builder::from(&sdk).timeout_config(tb_shared::aws::timeouts(Duration::from_secs(10)));
    if let Some(r) = region {
        conf = conf.region(aws_sdk_dynamodb::config::Region::new(r.to_owned()));
    }
    Client::from_conf(conf.build())
}
