//! Quota counters in DynamoDB, one item per caller and window, charged atomically across windows.
//!
//! # Table design (see `docs/quota-table.md`)
//! - Partition key `pk` (S): `{caller}#{length_seconds}s#{window_start}`, e.g. `orders#86400s#1795305600`. Caller ids
//!   are `[A-Za-z0-9._-]`, so `#` cannot be forged into a key. The window *length*, not its name, is in the key so a
//!   policy edit that renames `day` to `86400s` keeps counting the same grants; the window start makes every window
//!   a new item, so nothing ever needs resetting.
//! - `grants` (N): grants charged in that window.
//! - `expires_at` (N): the TTL attribute, epoch seconds = window end + a margin; DynamoDB deletes ended counters.
//!   Correctness never depends on TTL deletion (which lags by up to days): an ended window's key is never read again.
//! - On-demand billing; IAM needs `dynamodb:UpdateItem` on the table (`TransactWriteItems` is authorised per item as
//!   `UpdateItem`), plus `dynamodb:GetItem` only for the rare follow-up read described below.
//!
//! # Atomicity
//! One window: a conditional `UpdateItem` (`ADD grants 1 IF grants < limit`). Several windows: one
//! `TransactWriteItems` with that update per window, so either every window had room and all are charged, or the
//! transaction is cancelled and none is. Cancellation reasons say which windows were full (they carry
//! `ConditionalCheckFailed`); that decides `Retry-After`. `TransactionConflict` (concurrent transactions on the same
//! counters) is retried briefly with jitter inside the time budget; anything else is [`QuotaError::Unavailable`].
//!
//! # Time bound
//! Every call carries an SDK operation timeout (default 1.5 s, retries included) so an unreachable DynamoDB turns into
//! a quick 503 instead of eating the Lambda's remaining time. A timed-out charge may or may not have been applied;
//! it is never refunded, which errs towards counting a grant that was not issued, never the reverse.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update};
use aws_sdk_dynamodb::Client;
use rand::Rng;
use tb_shared::ids::CallerId;
use tb_shared::policy::QuotaWindow;

use super::{epoch, exhausted, span, Charge, ChargedCounter, QuotaError, QuotaOutcome, QuotaStore, WindowSpan};

/// Partition key attribute (string).
pub const KEY_ATTR: &str = "pk";
/// Counter attribute (number).
pub const COUNT_ATTR: &str = "grants";
/// TTL attribute (number, epoch seconds). Enable TTL on the table with this attribute name.
pub const TTL_ATTR: &str = "expires_at";

/// Default time a counter is kept after its window ended (for operators looking at recent usage).
pub(crate) const DEFAULT_TTL_MARGIN: Duration = Duration::from_secs(3_600);
/// Attempts of a multi-window transaction cancelled only by `TransactionConflict`.
const CONFLICT_ATTEMPTS: u32 = 4;

/// How the store talks to its table.
#[derive(Debug, Clone)]
pub struct DynamoQuotaConfig {
    /// Table name (the SAM template's `QuotaTable`).
    pub table: String,
    /// Upper bound of one DynamoDB operation including SDK retries; applied by [`DynamoQuotaStore::from_sdk_config`].
    pub operation_timeout: Duration,
    /// Added to a window's end to form the TTL attribute.
    pub ttl_margin: Duration,
}

impl DynamoQuotaConfig {
    /// The defaults: 1.5 s per operation, counters kept one hour past their window.
    pub fn new(table: impl Into<String>) -> Self {
        Self {
            table: table.into(),
            operation_timeout: tb_shared::aws::DEFAULT_OPERATION_TIMEOUT,
            ttl_margin: DEFAULT_TTL_MARGIN,
        }
    }
}

/// [`QuotaStore`] on a DynamoDB table.
#[derive(Debug, Clone)]
pub struct DynamoQuotaStore {
    client: Client,
    config: DynamoQuotaConfig,
}

/// The DynamoDB client configuration the store wants: the shared SDK config (region, credentials, endpoint) with
/// the operation timeout applied.
pub(crate) fn client_config(sdk: &SdkConfig, operation_timeout: Duration) -> aws_sdk_dynamodb::Config {
    aws_sdk_dynamodb::config::Builder::from(sdk).timeout_config(tb_shared::aws::timeouts(operation_timeout)).build()
}

/// The partition key of one counter.
pub fn counter_key(caller: &CallerId, window_length: Duration, window_start: u64) -> String {
    format!("{}#{}s#{}", caller.as_str(), window_length.as_secs().max(1), window_start)
}

impl DynamoQuotaStore {
    /// Builds the client from the shared SDK config with `config.operation_timeout` applied. Use this in `main`.
    pub fn from_sdk_config(sdk: &SdkConfig, config: DynamoQuotaConfig) -> Self {
        let client = Client::from_conf(client_config(sdk, config.operation_timeout));
        Self { client, config }
    }

    /// Uses a client built elsewhere; its timeouts are the caller's business (see [`client_config`]).
    pub fn with_client(client: Client, config: DynamoQuotaConfig) -> Self {
        Self { client, config }
    }

    fn ttl(&self, s: WindowSpan) -> AttributeValue {
        AttributeValue::N(s.end.saturating_add(self.config.ttl_margin.as_secs()).to_string())
    }

    fn names() -> HashMap<String, String> {
        HashMap::from([("#c".to_owned(), COUNT_ATTR.to_owned()), ("#ttl".to_owned(), TTL_ATTR.to_owned())])
    }

    fn charge_values(&self, w: &QuotaWindow, s: WindowSpan) -> HashMap<String, AttributeValue> {
        HashMap::from([
            (":one".to_owned(), AttributeValue::N("1".into())),
            (":limit".to_owned(), AttributeValue::N(w.limit.to_string())),
            (":ttl".to_owned(), self.ttl(s)),
        ])
    }

    async fn charge_one(
        &self,
        caller: &CallerId,
        w: &QuotaWindow,
        s: WindowSpan,
        now: Duration,
    ) -> Result<QuotaOutcome, QuotaError> {
        let res = self
            .client
            .update_item()
            .table_name(&self.config.table)
            .key(KEY_ATTR, AttributeValue::S(counter_key(caller, w.length, s.start)))
            .update_expression(UPDATE_CHARGE)
            .condition_expression(CONDITION_ROOM)
            .set_expression_attribute_names(Some(Self::names()))
            .set_expression_attribute_values(Some(self.charge_values(w, s)))
            .send()
            .await;
        match res {
            Ok(_) => Ok(granted(caller, [(w, s)])),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                Ok(exhausted(now, [(w, s)]))
            }
            Err(e) => Err(unavailable("charge", &e)),
        }
    }

    async fn charge_all(
        &self,
        caller: &CallerId,
        spans: &[(&QuotaWindow, WindowSpan)],
        now: Duration,
    ) -> Result<QuotaOutcome, QuotaError> {
        let mut items = Vec::with_capacity(spans.len());
        for (w, s) in spans {
            let update = Update::builder()
                .table_name(&self.config.table)
                .key(KEY_ATTR, AttributeValue::S(counter_key(caller, w.length, s.start)))
                .update_expression(UPDATE_CHARGE)
                .condition_expression(CONDITION_ROOM)
                .set_expression_attribute_names(Some(Self::names()))
                .set_expression_attribute_values(Some(self.charge_values(w, *s)))
                .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
                .build()
                .map_err(|e| QuotaError::Unavailable(format!("building the quota transaction: {e}")))?;
            items.push(TransactWriteItem::builder().update(update).build());
        }

        let started = Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            // The SDK fills in a ClientRequestToken, so its own retries of this call are idempotent: a retried
            // transaction that had in fact committed is not charged twice.
            let res = self.client.transact_write_items().set_transact_items(Some(items.clone())).send().await;
            let cancelled = match res {
                Ok(_) => return Ok(granted(caller, spans.iter().copied())),
                Err(SdkError::ServiceError(e)) => match e.into_err() {
                    TransactWriteItemsError::TransactionCanceledException(c) => c,
                    other => return Err(unavailable_service("charge", other.code())),
                },
                Err(e) => return Err(unavailable("charge", &e)),
            };
            let reasons = cancelled.cancellation_reasons();
            let code = |i: usize| reasons.get(i).and_then(|r| r.code()).unwrap_or("");
            let full: Vec<_> = spans
                .iter()
                .enumerate()
                .filter(|(i, _)| code(*i) == "ConditionalCheckFailed")
                .map(|(_, ws)| *ws)
                .collect();
            if !full.is_empty() {
                return Ok(exhausted(now, full));
            }
            if reasons.is_empty() {
                // An emulator (or a future API change) that gives no reasons: find the full windows by reading.
                let full = self.read_full(caller, spans).await?;
                if !full.is_empty() {
                    return Ok(exhausted(now, full));
                }
            } else if !reasons.iter().all(|r| matches!(r.code(), Some("TransactionConflict") | Some("None") | None)) {
                let codes: Vec<_> = reasons.iter().filter_map(|r| r.code()).filter(|c| *c != "None").collect();
                return Err(QuotaError::Unavailable(format!("charge cancelled: {}", codes.join(","))));
            }
            // Lost a race with another transaction on the same counters: try again shortly, within the budget.
            if attempt >= CONFLICT_ATTEMPTS || started.elapsed() >= self.config.operation_timeout {
                return Err(QuotaError::Unavailable("charge kept conflicting with concurrent charges".into()));
            }
            let pause = rand::rng().random_range(5..=25u64) * u64::from(attempt);
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
    }

    /// Strongly consistent read of each counter, returning the windows at or over their limit.
    async fn read_full<'a>(
        &self,
        caller: &CallerId,
        spans: &[(&'a QuotaWindow, WindowSpan)],
    ) -> Result<Vec<(&'a QuotaWindow, WindowSpan)>, QuotaError> {
        let mut full = Vec::new();
        for (w, s) in spans {
            let out = self
                .client
                .get_item()
                .table_name(&self.config.table)
                .key(KEY_ATTR, AttributeValue::S(counter_key(caller, w.length, s.start)))
                .consistent_read(true)
                .projection_expression("#c")
                .expression_attribute_names("#c", COUNT_ATTR)
                .send()
                .await
                .map_err(|e| unavailable("read", &e))?;
            let count = out
                .item()
                .and_then(|i| i.get(COUNT_ATTR))
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
            if count >= w.limit {
                full.push((*w, *s));
            }
        }
        Ok(full)
    }
}

const UPDATE_CHARGE: &str = "ADD #c :one SET #ttl = if_not_exists(#ttl, :ttl)";
const CONDITION_ROOM: &str = "attribute_not_exists(#c) OR #c < :limit";

fn granted<'a>(caller: &CallerId, spans: impl IntoIterator<Item = (&'a QuotaWindow, WindowSpan)>) -> QuotaOutcome {
    let counters = spans
        .into_iter()
        .map(|(w, s)| ChargedCounter { window: w.name.clone(), window_start: s.start, window_length: w.length })
        .collect();
    QuotaOutcome::Granted(Charge { caller: caller.clone(), counters })
}

/// An SDK failure as an outage of the quota store, described without request contents.
fn unavailable<E: ProvideErrorMetadata, R>(what: &str, e: &SdkError<E, R>) -> QuotaError {
    QuotaError::Unavailable(format!("{what}: {}", tb_shared::aws::describe(e)))
}

fn unavailable_service(what: &str, code: Option<&str>) -> QuotaError {
    QuotaError::Unavailable(format!("{what}: service error {}", code.unwrap_or("unknown")))
}

#[async_trait]
impl QuotaStore for DynamoQuotaStore {
    async fn try_charge(
        &self,
        caller: &CallerId,
        windows: &[QuotaWindow],
        now: SystemTime,
    ) -> Result<QuotaOutcome, QuotaError> {
        let now = epoch(now)?;
        let spans: Vec<_> = windows.iter().map(|w| (w, span(now, w.length))).collect();
        match spans.as_slice() {
            [] => Ok(granted(caller, [])),
            [(w, s)] => self.charge_one(caller, w, *s, now).await,
            _ => self.charge_all(caller, &spans, now).await,
        }
    }

    /// Decrements each charged counter, never below zero. Best effort and per counter: one failure does not stop the
    /// others; the first failure is returned for the caller to log and count. A counter whose window has ended is
    /// still decremented (harmless: nothing reads it again).
    async fn refund(&self, charge: &Charge) -> Result<(), QuotaError> {
        let mut first_err = None;
        for c in &charge.counters {
            let res = self
                .client
                .update_item()
                .table_name(&self.config.table)
                .key(KEY_ATTR, AttributeValue::S(counter_key(&charge.caller, c.window_length, c.window_start)))
                .update_expression("ADD #c :minus_one")
                .condition_expression("#c > :zero")
                .expression_attribute_names("#c", COUNT_ATTR)
                .expression_attribute_values(":minus_one", AttributeValue::N("-1".into()))
                .expression_attribute_values(":zero", AttributeValue::N("0".into()))
                .send()
                .await;
            match res {
                Ok(_) => {}
                Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                    tracing::debug!(window = %c.window, "quota refund skipped: counter already at zero or expired");
                }
                Err(e) => {
                    let err = unavailable("refund", &e);
                    tracing::warn!(window = %c.window, window_start = c.window_start, error = %err, "quota refund failed");
                    first_err.get_or_insert(err);
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}
