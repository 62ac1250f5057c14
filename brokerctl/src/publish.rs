//! `brokerctl truststore publish`: check a bundle, upload it as a new S3 object version, and point the mTLS custom
//! domain at exactly that version.
//!
//! API Gateway reads the truststore from `s3://bucket/key` *at a pinned version*, so uploading alone changes nothing;
//! pinning is what makes a rotation deliberate and a rollback one command (the previous version id is printed). The
//! order is chosen so that nothing is changed when something is wrong: the bundle is checked, the domain is read and
//! must already use this bucket and key with mutual TLS, the bucket must be versioned, and only then is the object
//! written and the domain updated. The warnings API Gateway reports for the new truststore are printed, because a
//! certificate API Gateway cannot use is only reported there.

use aws_sdk_apigateway::types::{Op, PatchOperation};

use crate::truststore::{check_bundle, CheckOptions, Report};

/// What `publish` needs.
#[derive(Debug, Clone)]
pub struct PublishInput {
    pub bundle: Vec<u8>,
    pub bucket: String,
    pub key: String,
    pub domain: String,
    /// An AWS-compatible endpoint (moto) for S3 and API Gateway; `None` uses the normal AWS endpoints.
    pub endpoint: Option<String>,
    /// A separate endpoint for API Gateway only (defaults to `endpoint`).
    pub apigateway_endpoint: Option<String>,
}

/// What happened.
#[derive(Debug, Clone)]
pub struct PublishOutcome {
    pub check: Report,
    pub version_id: String,
    pub previous_version: Option<String>,
    pub domain_status: Option<String>,
    pub truststore_warnings: Vec<String>,
}

/// Why nothing (or not everything) was published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("the bundle has errors; nothing was uploaded")]
    CheckFailed(Report),
    #[error("{0}")]
    Refused(String),
    #[error("{step}: {message}")]
    Aws { step: &'static str, message: String },
}

fn aws<E: std::error::Error>(step: &'static str) -> impl FnOnce(E) -> PublishError {
    move |e| {
        // DisplayErrorContext shows the service's error code and message, which names no secret.
        PublishError::Aws { step, message: aws_sdk_s3::error::DisplayErrorContext(&e).to_string() }
    }
}

/// Runs the whole publish.
pub async fn publish(input: &PublishInput) -> Result<PublishOutcome, PublishError> {
    let check = check_bundle(&input.bundle, &CheckOptions::default());
    if check.errors().next().is_some() {
        return Err(PublishError::CheckFailed(check));
    }

    let sdk = crate::aws::sdk_config(input.endpoint.as_deref()).await;
    let s3 = crate::aws::s3_client(&sdk, input.endpoint.as_deref());
    let apigw_endpoint = input.apigateway_endpoint.as_deref().or(input.endpoint.as_deref());
    let mut agw_conf = aws_sdk_apigateway::config::Builder::from(&sdk);
    if let Some(e) = apigw_endpoint {
        agw_conf = agw_conf.endpoint_url(e);
    }
    let apigw = aws_sdk_apigateway::Client::from_conf(agw_conf.build());

    let uri = format!("s3://{}/{}", input.bucket, input.key);
    let domain =
        apigw.get_domain_name().domain_name(&input.domain).send().await.map_err(aws("reading the custom domain"))?;
    let mtls = domain.mutual_tls_authentication().ok_or_else(|| {
        PublishError::Refused(format!("domain {} has no mutual TLS configured; nothing was uploaded", input.domain))
    })?;
    match mtls.truststore_uri() {
        Some(u) if u == uri => {}
        other => {
            return Err(PublishError::Refused(format!(
                "domain {} reads its truststore from {}, not {uri}; nothing was uploaded",
                input.domain,
                other.unwrap_or("(none)")
            )))
        }
    }
    let previous_version = mtls.truststore_version().map(str::to_owned);

    let versioned = match s3.get_bucket_versioning().bucket(&input.bucket).send().await {
        Ok(v) => v.status().map(|s| s.as_str()) == Some("Enabled"),
        // moto answers with the root element `GetBucketVersioningResponse` where S3 sends `VersioningConfiguration`,
        // which the SDK refuses to parse. The content is the same, so a 200 answer is read for its Status element.
        Err(aws_sdk_s3::error::SdkError::ServiceError(se)) if se.raw().status().as_u16() == 200 => {
            se.raw().body().bytes().is_some_and(|b| String::from_utf8_lossy(b).contains("<Status>Enabled</Status>"))
        }
        Err(e) => return Err(aws("reading bucket versioning")(e)),
    };
    if !versioned {
        return Err(PublishError::Refused(format!(
            "bucket {} is not versioned: API Gateway pins a truststore version, and a rollback needs the old one; \
             nothing was uploaded",
            input.bucket
        )));
    }

    let put = s3
        .put_object()
        .bucket(&input.bucket)
        .key(&input.key)
        .content_type("application/x-pem-file")
        .body(input.bundle.clone().into())
        .send()
        .await
        .map_err(aws("uploading the bundle"))?;
    let version_id = put
        .version_id()
        .filter(|v| !v.is_empty() && *v != "null")
        .ok_or_else(|| PublishError::Refused("S3 returned no version id for the upload".into()))?
        .to_owned();

    let updated = apigw
        .update_domain_name()
        .domain_name(&input.domain)
        .patch_operations(
            PatchOperation::builder()
                .op(Op::Replace)
                .path("/mutualTlsAuthentication/truststoreVersion")
                .value(&version_id)
                .build(),
        )
        .send()
        .await
        .map_err(aws("pointing the domain at the new version (the object was uploaded)"))?;
    let truststore_warnings =
        updated.mutual_tls_authentication().map(|m| m.truststore_warnings().to_vec()).unwrap_or_default();
    Ok(PublishOutcome {
        check,
        version_id,
        previous_version,
        domain_status: updated.domain_name_status().map(|s| s.as_str().to_owned()),
        truststore_warnings,
    })
}
