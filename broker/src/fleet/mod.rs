//! Fleet-wide token reuse: one Cognito grant per (app client, scopes, caller) and token life across every warm
//! instance of the broker, not one per instance.
//!
//! The in-memory cache ([`crate::reuse::TokenReuse`]) stays in front. On a miss there, a caller with
//! `fleet_token_reuse` goes to a DynamoDB table shared by all instances:
//! 1. a still-fresh sealed token for its key is opened (KMS releases the data key only under the request's own
//!    encryption context, [`sealed`]) and served, and remembered in memory;
//! 2. with none (absent, past its reuse deadline, or one that does not open), the instance takes a short lease on
//!    the key with a conditional write and fetches from Cognito, then writes the sealed token, which ends the lease;
//! 3. an instance that finds someone else's live lease polls for the new token for a bounded time
//!    ([`FleetSettings::wait`]); when the lease ends without a token (its holder failed or crashed, or the lease
//!    expired) it takes the lease itself; when its wait is over it fetches by itself rather than fail.
//!
//! Availability comes first: the cache only ever saves Cognito calls. Any table or KMS failure (down, slow,
//! throttled, no permission) makes the instance skip the cache for [`FleetSettings::retry_after`], so a cache
//! outage costs one bounded operation, not one per request, and issuance goes on from memory and Cognito.

pub(crate) mod keys;
pub(crate) mod sealed;
pub(crate) mod table;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use aws_config::SdkConfig;
use secrecy::SecretString;
use tb_shared::clock::Clock;
use tb_shared::ids::ScopeSet;

use crate::reuse::ReuseKey;
pub use keys::{DataKeySource, KmsDataKeys};
use keys::{DataKeys, KeyError};
use sealed::{EncryptionContext, SealedToken};
use table::{DynamoTokenTable, Guard, Lease, LeaseTimes, Record, TokenTable};

/// How the fleet cache is reached and how long it may take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetSettings {
    /// The DynamoDB table (`TOKEN_CACHE_TABLE`).
    pub table: String,
    /// The KMS key the data keys come from (`TOKEN_CACHE_KMS_KEY`: id, ARN or alias).
    pub kms_key: String,
    /// Budget of one table or KMS operation, retries included.
    pub timeout: Duration,
    /// How long a lease lasts: long enough for a normal Cognito call, short enough that a crashed holder delays
    /// the others only briefly.
    pub lease: Duration,
    /// How long an instance waits for another's fetch before fetching by itself.
    pub wait: Duration,
    /// How long the cache is skipped after a table or KMS failure.
    pub retry_after: Duration,
    /// Time a lookup leaves before the Lambda deadline for the fetch that may follow it (a quota charge and one
    /// Cognito attempt, and the answer): the cache never takes the time the grant needs. [`crate::Config`] sets it
    /// from the upstream and AWS timeouts.
    pub fetch_reserve: Duration,
}

impl FleetSettings {
    /// The defaults for a table and key.
    pub fn new(table: impl Into<String>, kms_key: impl Into<String>) -> Self {
        FleetSettings {
            table: table.into(),
            kms_key: kms_key.into(),
            timeout: Duration::from_millis(400),
            // A holder's quota charge, one Cognito attempt (3 s at most by default) and its write fit in it.
            lease: Duration::from_millis(4_000),
            // At least the lease, so a crashed holder is taken over by one waiter rather than all of them fetching.
            wait: Duration::from_millis(4_500),
            retry_after: Duration::from_secs(30),
            fetch_reserve: Duration::from_millis(5_000),
        }
    }
}

/// First and longest pause between two reads of a key another instance is fetching.
const POLL_FIRST: Duration = Duration::from_millis(20);
const POLL_MAX: Duration = Duration::from_millis(200);
/// Time a write or release after the grant leaves before the Lambda deadline, for the answer.
const ANSWER_RESERVE: Duration = Duration::from_millis(500);
/// Why a cache operation was not even tried.
const NO_TIME: &str = "no time left before the Lambda deadline";
/// How far another instance's clock may differ from this one's: an item obtained further ahead is not trusted to
/// say how much life its token has left, and every token served from the table is said to have this much less life
/// (so a writer's clock running ahead never makes `expires_in` too large).
const MAX_CLOCK_SKEW_MS: u64 = 2_000;

/// The fleet cache of one instance.
pub struct FleetCache {
    table: Arc<dyn TokenTable>,
    keys: DataKeys,
    settings: FleetSettings,
    clock: Clock,
    /// Until when the cache is skipped after a failure.
    down_until: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for FleetCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetCache").field("table", &self.settings.table).finish_non_exhaustive()
    }
}

/// A token found in the fleet cache.
pub(crate) struct Found {
    pub access_token: SecretString,
    pub expires_in: u64,
    pub scope: ScopeSet,
    /// The end of its reuse window, on this instance's monotonic clock: where the table's ends.
    pub serve_until: Instant,
    /// The end of its life, less the clock allowance.
    pub expires_at: Instant,
}

/// Why an instance fetches from Cognito itself, for the decision log line and the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FetchReason {
    /// It holds the lease.
    Leased,
    /// Another instance held the lease past this one's wait.
    WaitedOut,
    /// The table or KMS failed just now.
    Unavailable,
    /// The cache is skipped after a recent failure.
    Bypassed,
    /// The Lambda deadline left no time for the cache.
    OutOfTime,
}

impl FetchReason {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            FetchReason::Leased => "leased",
            FetchReason::WaitedOut => "waited_out",
            FetchReason::Unavailable => "unavailable",
            FetchReason::Bypassed => "bypassed",
            FetchReason::OutOfTime => "out_of_time",
        }
    }
}

/// What opening an item gave.
enum Opened {
    Fresh(Found),
    /// Its reuse window closed meanwhile.
    Stale,
    /// It does not open for this request.
    Damaged,
}

/// What a lookup found.
pub(crate) enum Lookup {
    Hit(Found),
    Fetch(Ticket),
}

/// The right to write the token this instance is about to fetch (or the lease to give back if it fails).
pub(crate) struct Ticket {
    item: String,
    context: EncryptionContext,
    guard: Option<Guard>,
    pub reason: FetchReason,
    /// An item that would not open was found (and will be overwritten).
    pub damaged: bool,
}

impl FleetCache {
    /// The cache on DynamoDB and KMS, both through `sdk` (the function's configuration).
    pub fn from_sdk_config(sdk: &SdkConfig, settings: FleetSettings, clock: Clock) -> Self {
        Self::from_sdk_configs(sdk, sdk, settings, clock)
    }

    /// The cache with the table and KMS reached through different configurations (tests point one at a dead
    /// endpoint).
    pub fn from_sdk_configs(table: &SdkConfig, kms: &SdkConfig, settings: FleetSettings, clock: Clock) -> Self {
        let t = DynamoTokenTable::from_sdk_config(table, settings.table.clone(), settings.timeout);
        let k = KmsDataKeys::from_sdk_config(kms, settings.kms_key.clone(), settings.timeout);
        Self::with_sources(Arc::new(t), Arc::new(k), settings, clock)
    }

    fn with_sources(
        table: Arc<dyn TokenTable>,
        keys: Arc<dyn DataKeySource>,
        settings: FleetSettings,
        clock: Clock,
    ) -> Self {
        FleetCache { table, keys: DataKeys::new(keys), settings, clock, down_until: Mutex::new(None) }
    }

    fn now_ms(&self) -> u64 {
        self.clock.now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
    }

    fn is_down(&self) -> bool {
        let mut d = self.down_until.lock().unwrap_or_else(|p| p.into_inner());
        match *d {
            Some(until) if Instant::now() < until => true,
            Some(_) => {
                *d = None;
                tracing::info!(event = "token_cache_retry", "trying the fleet token cache again");
                false
            }
            None => false,
        }
    }

    /// Skips the cache for a while after a failure; returns whether it did. Running out of the request's time is
    /// not the cache's failure and skips nothing.
    fn mark_down(&self, why: &str) -> bool {
        if why == NO_TIME {
            return false;
        }
        let mut d = self.down_until.lock().unwrap_or_else(|p| p.into_inner());
        if d.is_none() {
            tracing::warn!(
                event = "token_cache_unavailable",
                error = why,
                retry_after_s = self.settings.retry_after.as_secs(),
                "fleet token cache unavailable; serving from memory and Cognito without it for a while"
            );
        }
        *d = Some(Instant::now() + self.settings.retry_after);
        true
    }

    /// Runs one cache operation within its budget and before `end` (the point past which the request needs its
    /// time for something else). The outer error is the time running out.
    async fn within<T>(&self, end: Option<Instant>, op: impl std::future::Future<Output = T>) -> Result<T, String> {
        let mut budget = self.settings.timeout;
        let mut cut_by_end = false;
        if let Some(end) = end {
            match end.checked_duration_since(Instant::now()) {
                Some(l) if !l.is_zero() => {
                    cut_by_end = l < budget;
                    budget = budget.min(l);
                }
                _ => return Err(NO_TIME.into()),
            }
        }
        // An operation cut short by the request's own time is not the cache failing.
        tokio::time::timeout(budget, op).await.map_err(|_| if cut_by_end { NO_TIME } else { "timed out" }.to_owned())
    }

    /// [`Self::within`] for an operation that can fail, both failures as text for the log.
    async fn bounded<T, E: std::fmt::Display>(
        &self,
        end: Option<Instant>,
        op: impl std::future::Future<Output = Result<T, E>>,
    ) -> Result<T, String> {
        self.within(end, op).await?.map_err(|e| e.to_string())
    }

    /// Where a lookup must end: the Lambda deadline less the fetch reserve.
    pub(crate) fn lookup_end(&self, deadline: Option<Instant>) -> Option<Instant> {
        deadline.map(|d| d.checked_sub(self.settings.fetch_reserve).unwrap_or_else(Instant::now))
    }

    /// Where a write or release after the grant must end: the Lambda deadline less time for the answer.
    fn answer_end(deadline: Option<Instant>) -> Option<Instant> {
        deadline.map(|d| d.checked_sub(ANSWER_RESERVE).unwrap_or_else(Instant::now))
    }

    fn ticket(&self, item: String, context: EncryptionContext, guard: Option<Guard>, reason: FetchReason) -> Ticket {
        Ticket { item, context, guard, reason, damaged: false }
    }

    /// Finds a fresh token for `key`, or decides how this instance fetches one.
    pub(crate) async fn lookup(&self, key: &ReuseKey, deadline: Option<Instant>) -> Lookup {
        let item = sealed::item_key(key);
        let context = EncryptionContext::for_key(key);
        if self.is_down() {
            return Lookup::Fetch(self.ticket(item, context, None, FetchReason::Bypassed));
        }
        let end = self.lookup_end(deadline);
        let mut wait_until = Instant::now() + self.settings.wait;
        if let Some(end) = end {
            wait_until = wait_until.min(end);
        }
        let mut damaged = false;
        let mut pause = POLL_FIRST;
        loop {
            let record = match self.bounded(end, self.table.read(&item)).await {
                Ok(r) => r,
                Err(e) => return self.unavailable(item, context, &e),
            };
            let now_ms = self.now_ms();
            damaged |= record.damaged;
            if let Some(token) = record.token.as_ref().filter(|t| now_ms < t.reuse_until_ms()) {
                match self.open(&item, &context, token, end).await {
                    Ok(Opened::Fresh(found)) => return Lookup::Hit(found),
                    Ok(Opened::Stale) => {}
                    Ok(Opened::Damaged) => damaged = true,
                    Err(e) => return self.unavailable(item, context, &e),
                }
            }
            let times = self.lease_times(now_ms);
            // A lease this broker could not have taken (ending too far ahead) is someone else's doing: not honoured,
            // or a table writer could hold every instance in its wait.
            let leased_by_other =
                record.lease_until.is_some_and(|until| until > now_ms && until <= times.foreign_after_ms);
            if !leased_by_other {
                match self.take_lease(&item, &record, times, end).await {
                    Ok(Some(owner)) => {
                        let mut t = self.ticket(item, context, Some(Guard::Lease(owner)), FetchReason::Leased);
                        t.damaged = damaged;
                        return Lookup::Fetch(t);
                    }
                    Ok(None) => {} // someone else wrote or leased first: read again after a pause
                    Err(e) => return self.unavailable(item, context, &e),
                }
            }
            if Instant::now() + pause > wait_until {
                let mut t = self.ticket(item, context, Some(Guard::Seen(record.seen)), FetchReason::WaitedOut);
                t.damaged = damaged;
                return Lookup::Fetch(t);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(POLL_MAX);
        }
    }

    fn unavailable(&self, item: String, context: EncryptionContext, why: &str) -> Lookup {
        let reason = if self.mark_down(why) { FetchReason::Unavailable } else { FetchReason::OutOfTime };
        Lookup::Fetch(self.ticket(item, context, None, reason))
    }

    /// The longest lease this broker takes, with room for another instance's clock, ends at `foreign_after_ms`.
    fn lease_times(&self, now_ms: u64) -> LeaseTimes {
        let longest = self.settings.lease.as_millis() as u64 + MAX_CLOCK_SKEW_MS;
        LeaseTimes { now_ms, foreign_after_ms: now_ms.saturating_add(longest) }
    }

    async fn take_lease(
        &self,
        item: &str,
        record: &Record,
        times: LeaseTimes,
        end: Option<Instant>,
    ) -> Result<Option<String>, String> {
        let lease = Lease { owner: random_id(), until_ms: times.now_ms + self.settings.lease.as_millis() as u64 };
        let taken = self.bounded(end, self.table.take_lease(item, &record.seen, &lease, times, &random_id())).await?;
        Ok(taken.then_some(lease.owner))
    }

    /// Opens a fresh sealed token. Anything that does not open for this request (another key, context or item,
    /// altered, or from a clock too far ahead) is damage and treated as absent; a token whose reuse window closed
    /// while it was being opened is only stale.
    async fn open(
        &self,
        item: &str,
        context: &EncryptionContext,
        token: &SealedToken,
        end: Option<Instant>,
    ) -> Result<Opened, String> {
        if token.obtained_ms > self.now_ms().saturating_add(MAX_CLOCK_SKEW_MS) || token.lifetime_s == 0 {
            return Ok(Opened::Damaged);
        }
        let key = match self.within(end, self.keys.for_reading(&token.encrypted_key, context)).await? {
            Ok(k) => k,
            Err(KeyError::Refused) => return Ok(Opened::Damaged),
            Err(e) => return Err(e.to_string()),
        };
        let Ok(access_token) = sealed::open(&key, item, token) else {
            return Ok(Opened::Damaged);
        };
        let Ok(scope) = ScopeSet::parse_param(&token.scope) else {
            return Ok(Opened::Damaged);
        };
        // The time after KMS answered, not before.
        let Some(left) = remaining(token, self.now_ms()) else {
            return Ok(Opened::Stale);
        };
        let now = Instant::now();
        let later = |d: Duration| now.checked_add(d).unwrap_or(now);
        let (serve_until, expires_at) = (later(left.serve_for), later(left.life));
        Ok(Opened::Fresh(Found { access_token, expires_in: left.expires_in, scope, serve_until, expires_at }))
    }

    /// Writes the token this instance fetched, if its ticket still allows: the lease holder while it holds the
    /// lease, an instance that waited out only onto the item it last saw. A write that is refused or fails loses
    /// nothing but the saving; the caller has its token either way. A lease that is not filled is given back.
    /// Returns whether the cache failed (and is now skipped for a while).
    pub(crate) async fn store(
        &self,
        ticket: Ticket,
        token: &SecretString,
        obtained_at: SystemTime,
        lifetime_s: u64,
        scope: &ScopeSet,
        deadline: Option<Instant>,
    ) -> bool {
        let Some(guard) = &ticket.guard else { return false };
        let end = Self::answer_end(deadline);
        if self.is_down() {
            // Another request of this instance found the cache failing since this one's lookup.
            let _ = self.release(&ticket, end).await; // a failure leaves the lease to expire
            return false;
        }
        let obtained_ms = obtained_at.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        let (data_key, encrypted_key) = match self.bounded(end, self.keys.for_writing(&ticket.context)).await {
            Ok(k) => k,
            Err(e) => {
                let failed = self.mark_down(&e);
                let _ = self.release(&ticket, end).await; // a failure leaves the lease to expire
                return failed;
            }
        };
        let Some(sealed) = sealed::seal(&data_key, encrypted_key, &ticket.item, token, obtained_ms, lifetime_s, scope)
        else {
            let _ = self.release(&ticket, end).await; // a failure leaves the lease to expire
            return false;
        };
        let ttl_s = sealed.reuse_until_ms().div_ceil(1000);
        match self.bounded(end, self.table.write(&ticket.item, &sealed, &random_id(), guard, ttl_s)).await {
            Ok(true) => false,
            Ok(false) => {
                tracing::debug!(reason = ticket.reason.as_str(), "fleet token cache: another instance wrote first");
                false
            }
            Err(e) => {
                let failed = self.mark_down(&e);
                let _ = self.release(&ticket, end).await; // a failure leaves the lease to expire
                failed
            }
        }
    }

    /// Gives the lease back after a failed fetch, so the instances waiting on it move on at once. Returns whether
    /// the cache failed.
    pub(crate) async fn abandon(&self, ticket: Ticket, deadline: Option<Instant>) -> bool {
        match self.release(&ticket, Self::answer_end(deadline)).await {
            Err(e) => self.mark_down(&e),
            Ok(()) => false,
        }
    }

    /// Ends the ticket's lease, if it is one; a release that fails leaves the lease to expire.
    async fn release(&self, ticket: &Ticket, end: Option<Instant>) -> Result<(), String> {
        match &ticket.guard {
            Some(Guard::Lease(owner)) => self.bounded(end, self.table.release(&ticket.item, owner)).await,
            _ => Ok(()),
        }
    }
}

/// What is left of a sealed token at a given time.
#[derive(Debug, PartialEq, Eq)]
struct Left {
    /// Whole seconds of life, rounded down, less one.
    expires_in: u64,
    /// Its life, less the clock allowance: the writer's clock may be ahead of this one by the allowance, so the
    /// allowance counts as elapsed and the life left is never overstated.
    life: Duration,
    /// Until its reuse window closes (the table's deadline, with no allowance: every instance serves it as long).
    serve_for: Duration,
}

/// A sealed token's life left at `now_ms`, or `None` once its reuse window has closed or no whole second is left.
fn remaining(token: &SealedToken, now_ms: u64) -> Option<Left> {
    let serve_for = token.reuse_until_ms().checked_sub(now_ms).filter(|ms| *ms > 0)?;
    let ends_ms = token.obtained_ms.saturating_add(token.lifetime_s.saturating_mul(1000));
    let life = ends_ms.saturating_sub(now_ms).saturating_sub(MAX_CLOCK_SKEW_MS);
    let expires_in = (life / 1000).saturating_sub(1);
    (expires_in > 0).then(|| Left {
        expires_in,
        life: Duration::from_millis(life),
        serve_for: Duration::from_millis(serve_for),
    })
}

/// A random 128-bit id, hex: lease owners and item versions.
fn random_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(obtained_ms: u64, lifetime_s: u64) -> SealedToken {
        SealedToken {
            encrypted_key: vec![1],
            nonce: vec![0; 12],
            ciphertext: vec![],
            obtained_ms,
            lifetime_s,
            scope: "a".into(),
        }
    }

    #[test]
    fn life_left_counts_the_clock_allowance_and_ends_at_the_reuse_deadline() {
        let t = token(1_000_000, 3600);
        let left = |now| remaining(&t, now).map(|l| l.expires_in);
        // Just obtained: 3600 s less the 2 s allowance, less one; served for the whole window.
        assert_eq!(
            remaining(&t, 1_000_000),
            Some(Left {
                expires_in: 3597,
                life: Duration::from_millis(3_598_000),
                serve_for: Duration::from_millis(2_700_000)
            })
        );
        // 100.5 s in: 3497.5 s left after the allowance, whole seconds down, less one.
        assert_eq!(left(1_100_500), Some(3496));
        // A writer whose clock runs 1.5 s ahead: "obtained" after now; its real end is at most 1.5 s earlier than
        // written, and the 2 s allowance covers it (3600 + 1.5 - 2 = 3599.5 s, down, less one).
        assert_eq!(left(998_500), Some(3598));
        // The last millisecond of the reuse window is served, for that millisecond; the deadline itself is not.
        assert_eq!(remaining(&t, 1_000_000 + 2_700_000 - 1).map(|l| l.serve_for), Some(Duration::from_millis(1)));
        assert_eq!(left(1_000_000 + 2_700_000), None);
        assert_eq!(left(u64::MAX), None);
        // A life too short to serve once the allowance is counted.
        assert_eq!(remaining(&token(1_000_000, 3), 1_000_000), None);
        assert_eq!(remaining(&token(1_000_000, 4), 1_000_000).map(|l| l.expires_in), Some(1));
        assert!(remaining(&token(u64::MAX, u64::MAX), 0).is_some_and(|l| l.expires_in > 1_000_000));
    }
}
