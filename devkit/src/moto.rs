//! NOT FOR PRODUCTION. The one place tests, examples and benchmarks find moto, the AWS API emulator that
//! `scripts/with-moto.sh` starts on loopback, and build SDK clients and resources against it.
//!
//! A test that needs moto is never skipped: without `TB_MOTO_ENDPOINT` [`endpoint`] panics and says how to run it.
//! Clients carry fake credentials (moto accepts any), so nothing ever looks for real ones.
//!
//! ```no_run
//! # async fn demo() {
//! use tb_devkit::moto;
//! let sdk = moto::sdk_config().await;
//! let table = moto::unique("quota");
//! moto::create_quota_table(&sdk, &table).await;
//! let s3 = moto::s3_client(&sdk);
//! moto::create_versioned_bucket(&s3, &moto::unique("truststore")).await;
//! # }
//! ```

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::Credentials;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, TimeToLiveSpecification,
    TimeToLiveStatus,
};
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::types::{
    BucketLocationConstraint, BucketVersioningStatus, CreateBucketConfiguration, VersioningConfiguration,
};

/// The variable `scripts/with-moto.sh` exports with the emulator's endpoint (`http://127.0.0.1:PORT`).
pub const ENDPOINT_VAR: &str = "TB_MOTO_ENDPOINT";

/// The region [`sdk_config`] uses, the one `scripts/with-moto.sh` exports as `AWS_REGION` for the code under test.
/// moto keeps each region's tables, parameters and buckets apart.
pub const REGION: &str = "us-east-1";

/// The quota table's partition key attribute, as `docs/quota-table.md` lays the table out. It must equal
/// `tb_broker::quota_table::KEY_ATTR`; the broker's tests check that (this crate does not depend on the broker).
pub const QUOTA_KEY_ATTR: &str = "pk";

/// The quota table's TTL attribute (`tb_broker::quota_table::TTL_ATTR`, checked the same way).
pub const QUOTA_TTL_ATTR: &str = "expires_at";

/// The emulator's endpoint from [`ENDPOINT_VAR`], or why there is none: unset, empty, or not on loopback (tests
/// reach nothing else). For callers that report the problem themselves, such as an example with a usage message.
pub fn try_endpoint() -> Result<String, String> {
    match std::env::var(ENDPOINT_VAR) {
        Ok(e) if e.starts_with("http://127.0.0.1:") => Ok(e),
        Ok(e) if !e.is_empty() => {
            Err(format!("{ENDPOINT_VAR} must be a loopback http://127.0.0.1:PORT endpoint, got {e}"))
        }
        _ => Err(format!(
            "{ENDPOINT_VAR} is not set: run this through scripts/with-moto.sh, which starts moto and sets it"
        )),
    }
}

/// The emulator's endpoint. Panics when [`try_endpoint`] has none, so a test that needs moto fails (never skips)
/// and the message says to run it through `scripts/with-moto.sh`.
pub fn endpoint() -> String {
    try_endpoint().unwrap_or_else(|why| {
        panic!(
            "{why}, e.g.\n  scripts/with-moto.sh cargo test -p <package> --test <test>\n\
             (a test that needs moto fails without it; it is never skipped)"
        )
    })
}

/// An SDK config aimed at moto ([`endpoint`]) in [`REGION`] with fake credentials.
pub async fn sdk_config() -> SdkConfig {
    sdk_config_at(&endpoint(), REGION).await
}

/// An SDK config aimed at `endpoint` in `region` with fake credentials: for a test that shares moto's resources
/// with a function binary running in another region, or that aims at an endpoint where nothing answers.
pub async fn sdk_config_at(endpoint: &str, region: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(region.to_owned()))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "moto"))
        .load()
        .await
}

/// An S3 client for `sdk` with path-style addressing (the emulator does not serve bucket subdomains).
pub fn s3_client(sdk: &SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(sdk).force_path_style(true).build())
}

/// A name no other test (or earlier run against the same emulator) uses: `prefix`, the process id, a counter and
/// the clock's nanoseconds.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("{prefix}-{}-{}-{nanos}", std::process::id(), N.fetch_add(1, Ordering::SeqCst))
}

/// Creates the quota table `name` as `docs/quota-table.md` lays it out: on-demand billing, the partition key
/// [`QUOTA_KEY_ATTR`] (a string) and nothing else, TTL enabled on [`QUOTA_TTL_ATTR`]. A table that already exists
/// is fine (its TTL is enabled if it is not). Panics on any other failure.
pub async fn create_quota_table(sdk: &SdkConfig, name: &str) {
    create_quota_table_with(&aws_sdk_dynamodb::Client::new(sdk), name).await
}

/// [`create_quota_table`] with a client the caller already has.
pub async fn create_quota_table_with(ddb: &aws_sdk_dynamodb::Client, name: &str) {
    try_create_quota_table(ddb, name).await.unwrap_or_else(|e| panic!("{e}"))
}

/// [`create_quota_table_with`] that reports a failure instead of panicking (the local stack uses it against any
/// AWS-compatible endpoint).
pub async fn try_create_quota_table(ddb: &aws_sdk_dynamodb::Client, name: &str) -> Result<(), String> {
    let key = AttributeDefinition::builder()
        .attribute_name(QUOTA_KEY_ATTR)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .map_err(|e| e.to_string())?;
    let hash = KeySchemaElement::builder()
        .attribute_name(QUOTA_KEY_ATTR)
        .key_type(KeyType::Hash)
        .build()
        .map_err(|e| e.to_string())?;
    let created = ddb
        .create_table()
        .table_name(name)
        .attribute_definitions(key)
        .key_schema(hash)
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await;
    match created {
        Ok(_) => {}
        Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_in_use_exception()) => {
            // It exists already: enabling TTL again would be refused, so only when it is not on yet.
            let described = ddb
                .describe_time_to_live()
                .table_name(name)
                .send()
                .await
                .map_err(|e| format!("describing the TTL of {name}: {}", DisplayErrorContext(&e)))?;
            let on = described.time_to_live_description().is_some_and(|d| {
                d.attribute_name() == Some(QUOTA_TTL_ATTR)
                    && matches!(d.time_to_live_status(), Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling))
            });
            if on {
                return Ok(());
            }
        }
        Err(e) => return Err(format!("creating the quota table {name}: {}", DisplayErrorContext(&e))),
    }
    let ttl = TimeToLiveSpecification::builder()
        .attribute_name(QUOTA_TTL_ATTR)
        .enabled(true)
        .build()
        .map_err(|e| e.to_string())?;
    ddb.update_time_to_live()
        .table_name(name)
        .time_to_live_specification(ttl)
        .send()
        .await
        .map_err(|e| format!("enabling TTL on {name}: {}", DisplayErrorContext(&e)))?;
    Ok(())
}

/// Creates the bucket `name` in the client's region; one that already exists is fine. Panics on any other failure.
pub async fn create_bucket(s3: &aws_sdk_s3::Client, name: &str) {
    let mut request = s3.create_bucket().bucket(name);
    // us-east-1 takes no location constraint; every other region needs its own.
    if let Some(region) = s3.config().region().map(|r| r.as_ref().to_owned()).filter(|r| r != "us-east-1") {
        let location = CreateBucketConfiguration::builder()
            .location_constraint(BucketLocationConstraint::from(region.as_str()))
            .build();
        request = request.create_bucket_configuration(location);
    }
    match request.send().await {
        Ok(_) => {}
        // The emulator has one account: a bucket that "already exists" is one this or an earlier run made.
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_bucket_already_owned_by_you() || s.is_bucket_already_exists()) => {}
        Err(e) => panic!("creating the bucket {name} in moto: {}", DisplayErrorContext(&e)),
    }
}

/// [`create_bucket`], then versioning enabled on it (as the truststore bucket has; enabling it again is fine).
pub async fn create_versioned_bucket(s3: &aws_sdk_s3::Client, name: &str) {
    create_bucket(s3, name).await;
    let versioning = VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build();
    s3.put_bucket_versioning()
        .bucket(name)
        .versioning_configuration(versioning)
        .send()
        .await
        .unwrap_or_else(|e| panic!("enabling versioning on {name} in moto: {}", DisplayErrorContext(&e)));
}

/// Stores `value` as the SecureString parameter `name` (replacing an earlier value), as an operator stores an app
/// client's credentials for the broker. Panics on failure.
pub async fn put_secure_string(sdk: &SdkConfig, name: &str, value: &str) {
    aws_sdk_ssm::Client::new(sdk)
        .put_parameter()
        .name(name)
        .value(value)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .overwrite(true)
        .send()
        .await
        .unwrap_or_else(|e| panic!("storing the parameter {name} in moto: {}", DisplayErrorContext(&e)));
}

/// Creates the fleet token cache's table `name`: the same layout as the quota table (a string partition key `pk`,
/// TTL on `expires_at`, on-demand), which the broker's `token_cache` module names.
pub async fn create_token_cache_table(sdk: &SdkConfig, name: &str) {
    create_quota_table(sdk, name).await
}

/// Creates a symmetric KMS key (what the template's token-cache key is) and returns its id. Panics on failure.
pub async fn create_kms_key(sdk: &SdkConfig) -> String {
    let kms = aws_sdk_kms::Client::new(sdk);
    let out = kms
        .create_key()
        .description("token-broker test: fleet token cache data keys")
        .send()
        .await
        .unwrap_or_else(|e| panic!("creating a KMS key: {}", DisplayErrorContext(&e)));
    out.key_metadata().map(|m| m.key_id().to_owned()).expect("CreateKey answered without a key id")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_differ() {
        assert_ne!(unique("t"), unique("t"));
        assert!(unique("quota").starts_with("quota-"));
    }
}
