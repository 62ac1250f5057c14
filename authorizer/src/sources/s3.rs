use std::time::Duration;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::operation::get_object::GetObjectError;

use super::{Fetched, ObjectSource, SourceError, MAX_OBJECT_BYTES};

/// Budget of one read of the truststore or CRL bundle, retries included. The bundles are kilobytes and S3 answers
/// an unchanged one with a 304, so a second is plenty; it bounds both the cold start (two objects) and the request
/// that happens to run a trust refresh while S3 is unreachable, well inside the authorizer's 5 s timeout.
pub const S3_OPERATION_TIMEOUT: Duration = Duration::from_secs(1);

/// The S3 client trust material is read with: `sdk`'s region and credentials, and connect, read, attempt and
/// operation timeouts from `operation_timeout` (`tb_shared::aws::timeouts`), because the SDK's defaults bound only
/// the connection and a black-holed endpoint would otherwise hold a cold start or a request until Lambda's own
/// timeout. An endpoint override (an emulator) is addressed path-style, the only style emulators serve.
pub fn s3_client(sdk: &SdkConfig, operation_timeout: Duration) -> aws_sdk_s3::Client {
    let conf = aws_sdk_s3::config::Builder::from(sdk)
        .timeout_config(tb_shared::aws::timeouts(operation_timeout))
        .force_path_style(sdk.endpoint_url().is_some())
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// An object in S3, fetched with `If-None-Match` so an unchanged truststore costs a 304 and no body.
/// With `version_id` set, it reads exactly that version (pinned truststore); otherwise the latest.
#[derive(Debug, Clone)]
pub struct S3ObjectSource {
    client: aws_sdk_s3::Client,
    bucket: String,
    key: String,
    version_id: Option<String>,
}

impl S3ObjectSource {
    /// A source for `s3://bucket/key`.
    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>, key: impl Into<String>) -> Self {
        S3ObjectSource { client, bucket: bucket.into(), key: key.into(), version_id: None }
    }

    /// Parses `s3://bucket/key`.
    pub fn from_uri(client: aws_sdk_s3::Client, uri: &str) -> Option<Self> {
        let rest = uri.strip_prefix("s3://")?;
        let (bucket, key) = rest.split_once('/')?;
        if bucket.is_empty() || key.is_empty() {
            return None;
        }
        Some(Self::new(client, bucket, key))
    }

    /// Pins one object version.
    pub fn with_version(mut self, version_id: Option<String>) -> Self {
        self.version_id = version_id;
        self
    }
}

#[async_trait]
impl ObjectSource for S3ObjectSource {
    async fn fetch(&self, etag: Option<&str>) -> Result<Fetched, SourceError> {
        let mut req =
            self.client.get_object().bucket(&self.bucket).key(&self.key).set_version_id(self.version_id.clone());
        if let Some(tag) = etag {
            req = req.if_none_match(tag);
        }
        let out = match req.send().await {
            Ok(o) => o,
            Err(SdkError::ServiceError(e)) if matches!(e.err(), GetObjectError::NoSuchKey(_)) => {
                return Err(SourceError::NotFound)
            }
            Err(SdkError::ServiceError(e)) if e.raw().status().as_u16() == 304 => return Ok(Fetched::Unchanged),
            Err(SdkError::ResponseError(e)) if e.raw().status().as_u16() == 304 => return Ok(Fetched::Unchanged),
            Err(e) => return Err(SourceError::Unavailable(tb_shared::aws::describe(&e))),
        };
        if out.content_length().unwrap_or(0) > MAX_OBJECT_BYTES as i64 {
            return Err(SourceError::TooLarge(MAX_OBJECT_BYTES));
        }
        let new_tag = out.e_tag().unwrap_or_default().to_owned();
        if etag.is_some() && etag == Some(new_tag.as_str()) {
            return Ok(Fetched::Unchanged);
        }
        let body =
            out.body.collect().await.map_err(|e| SourceError::Unavailable(format!("reading body: {e}")))?.into_bytes();
        if body.len() > MAX_OBJECT_BYTES {
            return Err(SourceError::TooLarge(MAX_OBJECT_BYTES));
        }
        Ok(Fetched::Changed { body: body.to_vec(), etag: new_tag })
    }

    fn describe(&self) -> String {
        match &self.version_id {
            Some(v) => format!("s3://{}/{} (version {v})", self.bucket, self.key),
            None => format!("s3://{}/{}", self.bucket, self.key),
        }
    }
}
