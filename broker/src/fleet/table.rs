//! The fleet cache's table: one item per reuse key, holding a sealed token, a lease, or both.
//!
//! # Item layout (partition key `pk`, string)
//! | attribute | type | meaning |
//! |---|---|---|
//! | `pk` | S | `tok1#` + hex SHA-256 of the reuse key ([`super::sealed::item_key`]) |
//! | `ver` | S | random, new on every write and lease: the optimistic-concurrency check of the next writer |
//! | `lease_owner`, `lease_until` | S, N | the instance fetching a new token, until epoch ms |
//! | `edk`, `nonce`, `sealed` | B | encrypted data key, AES-GCM nonce, ciphertext with tag |
//! | `obtained_ms`, `lifetime_s`, `scope`, `fmt` | N, N, S, N | the token's metadata, covered by the tag |
//! | `expires_at` | N | TTL, epoch seconds: the reuse deadline of a token; shortly after the lease for a lease alone |
//!
//! TTL deletion lags, so readers check the reuse deadline themselves; the TTL only keeps the table small.
//!
//! # Conditions
//! Every write is conditional, so two instances never both believe they own a key:
//! - taking the lease needs the item unchanged since it was read ([`Seen`]) and no live lease;
//! - a lease holder's token write needs the lease still its own (a holder whose lease expired and was taken over
//!   loses its write, and the new holder's token stands);
//! - an instance that waited in vain and fetched by itself writes only if the item is unchanged since its last read.
//!
//! Writes replace the whole item, so a token write also ends the lease.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use super::sealed::{SealedToken, FORMAT};

/// Partition key.
pub const KEY_ATTR: &str = "pk";
/// TTL attribute (epoch seconds). Enable TTL on the table with this name.
pub const TTL_ATTR: &str = "expires_at";
const VER: &str = "ver";
const LEASE_OWNER: &str = "lease_owner";
const LEASE_UNTIL: &str = "lease_until";
const EDK: &str = "edk";
const NONCE: &str = "nonce";
const SEALED: &str = "sealed";
const OBTAINED: &str = "obtained_ms";
const LIFETIME: &str = "lifetime_s";
const SCOPE: &str = "scope";
const FMT: &str = "fmt";

/// The longest ciphertext blob KMS accepts.
const MAX_ENCRYPTED_KEY: usize = 6144;
/// AES-GCM's nonce length.
const NONCE_LEN: usize = 12;

/// How long a lease-only item outlives its lease before TTL may delete it.
const LEASE_TTL_MARGIN_S: u64 = 60;

/// What an instance saw of an item, for the condition of its next write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seen {
    /// No item.
    Absent,
    /// An item with this `ver`.
    Version(String),
    /// An item without a readable `ver` (not written by this broker, or damaged).
    Unversioned,
}

/// A lease on a key: who fetches, and until when (epoch ms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Lease {
    /// Random per lease.
    pub owner: String,
    /// Epoch milliseconds.
    pub until_ms: u64,
}

/// One item as read.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    pub seen: Seen,
    /// When the item's lease ends, epoch ms, whoever it names: the take-lease condition judges `lease_until` alone,
    /// and so does the reader.
    pub lease_until: Option<u64>,
    /// The sealed token, when the item holds a complete one of this format.
    pub token: Option<SealedToken>,
    /// The item holds token attributes that do not form a sealed token of this format.
    pub damaged: bool,
}

/// The times a lease is judged by, epoch ms.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LeaseTimes {
    pub now_ms: u64,
    /// A lease ending after this was not taken by this broker.
    pub foreign_after_ms: u64,
}

/// Who may write a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Guard {
    /// The holder of this lease.
    Lease(String),
    /// Whoever finds the item as it was seen.
    Seen(Seen),
}

/// Why the table could not be used. Its text names the operation and the kind of failure only.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("token cache table unavailable: {0}")]
pub(crate) struct TableError(pub String);

/// The table operations the fleet cache needs.
#[async_trait]
pub(crate) trait TokenTable: Send + Sync {
    /// Reads an item (strongly consistent: a waiter must see the token the moment it is written).
    async fn read(&self, pk: &str) -> Result<Record, TableError>;
    /// Takes the lease if the item is as `seen` and holds no live lease at `times.now_ms`: none, one that ended, or
    /// one ending after `times.foreign_after_ms`, later than any this broker takes (written by someone else, and so
    /// not honoured). `Ok(false)`: someone else changed the item or holds the lease.
    async fn take_lease(
        &self,
        pk: &str,
        seen: &Seen,
        lease: &Lease,
        times: LeaseTimes,
        ver: &str,
    ) -> Result<bool, TableError>;
    /// Writes a sealed token under `guard`, expiring at `ttl_s`. `Ok(false)`: the guard no longer holds.
    async fn write(
        &self,
        pk: &str,
        token: &SealedToken,
        ver: &str,
        guard: &Guard,
        ttl_s: u64,
    ) -> Result<bool, TableError>;
    /// Ends `owner`'s lease, if it still holds it.
    async fn release(&self, pk: &str, owner: &str) -> Result<(), TableError>;
}

/// [`TokenTable`] on DynamoDB.
#[derive(Debug, Clone)]
pub(crate) struct DynamoTokenTable {
    client: Client,
    table: String,
}

impl DynamoTokenTable {
    pub(crate) fn from_sdk_config(sdk: &SdkConfig, table: String, timeout: Duration) -> Self {
        let client = Client::from_conf(crate::quota::dynamo::client_config(sdk, timeout));
        DynamoTokenTable { client, table }
    }
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}
fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// The condition that the item is as seen, with its names and values.
fn seen_condition(
    seen: &Seen,
    names: &mut HashMap<String, String>,
    values: &mut HashMap<String, AttributeValue>,
) -> String {
    match seen {
        Seen::Absent => {
            names.insert("#pk".into(), KEY_ATTR.into());
            "attribute_not_exists(#pk)".into()
        }
        Seen::Version(v) => {
            names.insert("#ver".into(), VER.into());
            values.insert(":seen".into(), s(v.as_str()));
            "#ver = :seen".into()
        }
        Seen::Unversioned => {
            names.insert("#pk".into(), KEY_ATTR.into());
            names.insert("#ver".into(), VER.into());
            values.insert(":S".into(), s("S"));
            "attribute_exists(#pk) AND (attribute_not_exists(#ver) OR NOT attribute_type(#ver, :S))".into()
        }
    }
}

fn conditional_failed<E: aws_sdk_dynamodb::error::ProvideErrorMetadata>(e: &E) -> bool {
    e.code() == Some("ConditionalCheckFailedException")
}

fn num(item: &HashMap<String, AttributeValue>, k: &str) -> Option<u64> {
    item.get(k)?.as_n().ok()?.parse().ok()
}
fn bytes(item: &HashMap<String, AttributeValue>, k: &str) -> Option<Vec<u8>> {
    Some(item.get(k)?.as_b().ok()?.as_ref().to_vec())
}

/// Reads an item's attributes; anything missing or of the wrong type leaves that part out.
pub(crate) fn parse(item: Option<HashMap<String, AttributeValue>>) -> Record {
    let Some(item) = item else {
        return Record { seen: Seen::Absent, lease_until: None, token: None, damaged: false };
    };
    let seen = match item.get(VER).and_then(|v| v.as_s().ok()) {
        Some(v) => Seen::Version(v.clone()),
        None => Seen::Unversioned,
    };
    let lease_until = num(&item, LEASE_UNTIL);
    let token = (|| {
        (num(&item, FMT)? == FORMAT).then_some(())?;
        Some(SealedToken {
            // What KMS accepts as a ciphertext blob, and AES-GCM's nonce: anything else is damage, never a question
            // for KMS (whose refusal of a malformed blob would read as KMS failing).
            encrypted_key: bytes(&item, EDK).filter(|b| (1..=MAX_ENCRYPTED_KEY).contains(&b.len()))?,
            nonce: bytes(&item, NONCE).filter(|b| b.len() == NONCE_LEN)?,
            ciphertext: bytes(&item, SEALED)?,
            obtained_ms: num(&item, OBTAINED)?,
            lifetime_s: num(&item, LIFETIME)?,
            scope: item.get(SCOPE)?.as_s().ok()?.clone(),
        })
    })();
    let has_token_attrs = [EDK, NONCE, SEALED, OBTAINED, LIFETIME, SCOPE, FMT].iter().any(|k| item.contains_key(*k));
    Record { damaged: token.is_none() && has_token_attrs, seen, lease_until, token }
}

#[async_trait]
impl TokenTable for DynamoTokenTable {
    async fn read(&self, pk: &str) -> Result<Record, TableError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(KEY_ATTR, s(pk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| TableError(format!("GetItem {}", tb_shared::aws::describe(&e))))?;
        Ok(parse(out.item))
    }

    async fn take_lease(
        &self,
        pk: &str,
        seen: &Seen,
        lease: &Lease,
        times: LeaseTimes,
        ver: &str,
    ) -> Result<bool, TableError> {
        let mut names = HashMap::new();
        let mut values = HashMap::new();
        let seen_cond = seen_condition(seen, &mut names, &mut values);
        names.extend([
            ("#lo".to_owned(), LEASE_OWNER.to_owned()),
            ("#lu".to_owned(), LEASE_UNTIL.to_owned()),
            ("#ver".to_owned(), VER.to_owned()),
            ("#ttl".to_owned(), TTL_ATTR.to_owned()),
        ]);
        values.extend([
            (":owner".to_owned(), s(lease.owner.as_str())),
            (":until".to_owned(), n(lease.until_ms)),
            (":now".to_owned(), n(times.now_ms)),
            (":far".to_owned(), n(times.foreign_after_ms)),
            (":ver".to_owned(), s(ver)),
            (":N".to_owned(), s("N")),
            (":ttl".to_owned(), n(lease.until_ms / 1000 + LEASE_TTL_MARGIN_S)),
        ]);
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(KEY_ATTR, s(pk))
            .update_expression("SET #lo = :owner, #lu = :until, #ver = :ver, #ttl = :ttl")
            .condition_expression(format!(
                "({seen_cond}) AND (attribute_not_exists(#lu) OR NOT attribute_type(#lu, :N) OR #lu < :now \
                 OR #lu > :far)"
            ))
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(conditional_failed) => Ok(false),
            Err(e) => Err(TableError(format!("UpdateItem {}", tb_shared::aws::describe(&e)))),
        }
    }

    async fn write(
        &self,
        pk: &str,
        token: &SealedToken,
        ver: &str,
        guard: &Guard,
        ttl_s: u64,
    ) -> Result<bool, TableError> {
        let mut names = HashMap::new();
        let mut values = HashMap::new();
        let cond = match guard {
            Guard::Lease(owner) => {
                names.insert("#lo".into(), LEASE_OWNER.into());
                values.insert(":owner".into(), s(owner.as_str()));
                "#lo = :owner".to_owned()
            }
            Guard::Seen(seen) => seen_condition(seen, &mut names, &mut values),
        };
        let item = HashMap::from([
            (KEY_ATTR.to_owned(), s(pk)),
            (VER.to_owned(), s(ver)),
            (EDK.to_owned(), AttributeValue::B(token.encrypted_key.clone().into())),
            (NONCE.to_owned(), AttributeValue::B(token.nonce.clone().into())),
            (SEALED.to_owned(), AttributeValue::B(token.ciphertext.clone().into())),
            (OBTAINED.to_owned(), n(token.obtained_ms)),
            (LIFETIME.to_owned(), n(token.lifetime_s)),
            (SCOPE.to_owned(), s(token.scope.as_str())),
            (FMT.to_owned(), n(FORMAT)),
            (TTL_ATTR.to_owned(), n(ttl_s)),
        ]);
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(cond)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values((!values.is_empty()).then_some(values))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(conditional_failed) => Ok(false),
            Err(e) => Err(TableError(format!("PutItem {}", tb_shared::aws::describe(&e)))),
        }
    }

    async fn release(&self, pk: &str, owner: &str) -> Result<(), TableError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(KEY_ATTR, s(pk))
            .update_expression("REMOVE #lo, #lu")
            .condition_expression("#lo = :owner")
            .expression_attribute_names("#lo", LEASE_OWNER)
            .expression_attribute_names("#lu", LEASE_UNTIL)
            .expression_attribute_values(":owner", s(owner))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(conditional_failed) => Ok(()),
            Err(e) => Err(TableError(format!("UpdateItem {}", tb_shared::aws::describe(&e)))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn written(token: &SealedToken) -> HashMap<String, AttributeValue> {
        HashMap::from([
            (KEY_ATTR.to_owned(), s("tok1#x")),
            (VER.to_owned(), s("v1")),
            (EDK.to_owned(), AttributeValue::B(token.encrypted_key.clone().into())),
            (NONCE.to_owned(), AttributeValue::B(token.nonce.clone().into())),
            (SEALED.to_owned(), AttributeValue::B(token.ciphertext.clone().into())),
            (OBTAINED.to_owned(), n(token.obtained_ms)),
            (LIFETIME.to_owned(), n(token.lifetime_s)),
            (SCOPE.to_owned(), s(token.scope.as_str())),
            (FMT.to_owned(), n(FORMAT)),
            (TTL_ATTR.to_owned(), n(1)),
        ])
    }

    fn token() -> SealedToken {
        SealedToken {
            encrypted_key: vec![1; 8],
            nonce: vec![2; 12],
            ciphertext: vec![3; 40],
            obtained_ms: 1_000,
            lifetime_s: 3600,
            scope: "api/read".into(),
        }
    }

    #[test]
    fn a_written_item_reads_back_and_a_partial_one_is_damaged() {
        let r = parse(Some(written(&token())));
        assert_eq!(r.token, Some(token()));
        assert_eq!(r.seen, Seen::Version("v1".into()));
        assert!(!r.damaged && r.lease_until.is_none());
        let absent = parse(None);
        assert_eq!((absent.seen, absent.token, absent.damaged), (Seen::Absent, None, false));
        for attr in [EDK, NONCE, SEALED, OBTAINED, LIFETIME, SCOPE, FMT] {
            let mut item = written(&token());
            item.remove(attr);
            let r = parse(Some(item));
            assert!(r.token.is_none() && r.damaged, "{attr}");
        }
        let mut other_format = written(&token());
        other_format.insert(FMT.into(), n(2));
        assert!(parse(Some(other_format)).damaged);
        for (attr, len) in [(EDK, 0), (EDK, 6145), (NONCE, 11), (NONCE, 13), (NONCE, 0)] {
            let mut item = written(&token());
            item.insert(attr.into(), AttributeValue::B(vec![1u8; len].into()));
            assert!(parse(Some(item)).damaged, "{attr} of {len} bytes");
        }
        let mut longest = written(&token());
        longest.insert(EDK.into(), AttributeValue::B(vec![1u8; 6144].into()));
        assert!(parse(Some(longest)).token.is_some());
        let lease_only = HashMap::from([
            (KEY_ATTR.to_owned(), s("tok1#x")),
            (LEASE_OWNER.to_owned(), s("me")),
            (LEASE_UNTIL.to_owned(), n(5)),
        ]);
        let r = parse(Some(lease_only));
        assert_eq!(r.lease_until, Some(5));
        assert_eq!((r.seen, r.damaged), (Seen::Unversioned, false));
        let no_owner = HashMap::from([(KEY_ATTR.to_owned(), s("tok1#x")), (LEASE_UNTIL.to_owned(), n(7))]);
        assert_eq!(parse(Some(no_owner)).lease_until, Some(7), "a lease is read as the condition reads it");
    }

    fn attribute() -> impl Strategy<Value = AttributeValue> {
        prop_oneof![
            ".{0,12}".prop_map(AttributeValue::S),
            "-?[0-9]{0,25}(\\.[0-9]{0,3})?".prop_map(AttributeValue::N),
            proptest::collection::vec(any::<u8>(), 0..48).prop_map(|b| AttributeValue::B(b.into())),
            any::<bool>().prop_map(AttributeValue::Bool),
            Just(AttributeValue::Null(true)),
        ]
    }

    proptest! {
        /// Whatever a table writer put there, reading an item never panics, and a token is read only from a complete
        /// item of this format.
        #[test]
        fn any_item_reads_without_panicking(
            attrs in proptest::collection::hash_map(
                prop_oneof![
                    Just(VER), Just(LEASE_OWNER), Just(LEASE_UNTIL), Just(EDK), Just(NONCE), Just(SEALED),
                    Just(OBTAINED), Just(LIFETIME), Just(SCOPE), Just(FMT), Just("other"),
                ],
                attribute(),
                0..12,
            )
        ) {
            let item: HashMap<String, AttributeValue> = attrs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            let r = parse(Some(item.clone()));
            if r.token.is_some() {
                prop_assert_eq!(item.get(FMT).and_then(|v| v.as_n().ok()).map(String::as_str), Some("1"));
                prop_assert!(!r.damaged);
            }
        }
    }
}
