//! A fleet token cache in moto (a fresh table and KMS key per test) for the tests that run several broker instances.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::AttributeValue;
use tb_broker::{FleetCache, FleetSettings};
use tb_devkit::moto;
use tb_shared::clock::Clock;

use super::{client_id_of, Harness};

/// One table item, as the SDK reads it.
pub type Item = HashMap<String, AttributeValue>;

pub struct Fleet {
    pub sdk: SdkConfig,
    pub table: String,
    pub key: String,
}

impl Fleet {
    /// A fresh table and key in moto.
    pub async fn new() -> Fleet {
        let sdk = moto::sdk_config_at(&moto::endpoint(), moto::REGION).await;
        let table = moto::unique("fleet-tokens");
        moto::create_token_cache_table(&sdk, &table).await;
        let key = moto::create_kms_key(&sdk).await;
        Fleet { sdk, table, key }
    }

    pub fn settings(&self) -> FleetSettings {
        let mut s = FleetSettings::new(&self.table, &self.key);
        s.timeout = Duration::from_secs(2);
        s
    }

    pub fn cache(&self, tweak: impl FnOnce(&mut FleetSettings)) -> FleetCache {
        let mut s = self.settings();
        tweak(&mut s);
        FleetCache::from_sdk_config(&self.sdk, s, Clock::system())
    }

    pub fn ddb(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&self.sdk)
    }

    /// Every item of the table.
    pub async fn items(&self) -> Vec<HashMap<String, AttributeValue>> {
        self.ddb().scan().table_name(&self.table).send().await.unwrap().items.unwrap_or_default()
    }

    /// The one item of the table (the tests that call this have written exactly one key).
    pub async fn only_item(&self) -> HashMap<String, AttributeValue> {
        let mut items = self.items().await;
        assert_eq!(items.len(), 1, "one item expected");
        items.pop().unwrap()
    }

    pub async fn put(&self, item: HashMap<String, AttributeValue>) {
        self.ddb().put_item().table_name(&self.table).set_item(Some(item)).send().await.unwrap();
    }
}

pub fn fleet_grants(h: &Harness) -> u64 {
    h.standin.token_requests_for(client_id_of("fleet"))
}

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}
