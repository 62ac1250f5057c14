//! `brokerctl truststore publish`: check a bundle and the CRLs, upload them as new S3 object versions, and point the
//! mTLS custom domain at exactly the new truststore version.
//!
//! API Gateway reads the truststore from `s3://bucket/key` *at a pinned version*, so uploading alone changes nothing;
//! pinning is what makes a rotation deliberate and a rollback one command (the previous version id is printed). The
//! authorizer reads the CRL bundle (`crl/crls.pem` in the stack's bucket) at its latest version, so a CRL upload
//! takes effect within the trust refresh interval.
//!
//! Nothing is written when something is wrong, and what would turn callers into 401s is refused before anything is
//! written (`--force` publishes anyway and reports what it overrode):
//!
//! - a bundle with errors ([`check_bundle`]: e.g. an expired CA);
//! - a CRL set that leaves a CA without a CRL fresh for the margin, holds a CRL no CA signed, or goes back behind the
//!   published CRL of a CA ([`check_crls`]); the CAs checked are those of the new bundle **and** of the bundle
//!   published now, because the authorizer keeps the old truststore until the stack is deployed with the new
//!   version, and both must keep working across that gap;
//! - without `--crls`, a new bundle whose CAs the CRL bundle published now does not cover (a CA added without its
//!   CRL gets 401 for every certificate under it); when no CRL object exists, CRLs are not required (a warning);
//! - with CRLs only and a next bundle (the CA bundle to be published after them), a CA of that bundle without a
//!   CRL: publishing the CRLs of new CAs first is what lets the bundle follow without a gap;
//! - a CA of the published bundle that the new one drops, unless its fingerprint is named in `allow_removed`:
//!   removing a CA refuses every certificate it issued at the TLS handshake, which an operator does on purpose or
//!   not at all.
//!
//! Then the CRLs are uploaded first (a CRL for a CA the authorizer does not know yet is ignored, so this is safe),
//! then the bundle, then the domain is pinned to it. The warnings API Gateway reports for the new truststore are
//! passed on, because a certificate API Gateway cannot use is only reported there.

use std::time::{Duration, SystemTime};

use aws_sdk_apigateway::types::{Op, PatchOperation};
use aws_sdk_s3::error::ProvideErrorMetadata;

use crate::truststore::{
    check_bundle, check_crls, diff_bundles, CheckOptions, CrlCheckOptions, Finding, Report, Severity,
};

/// The object the stack's `CrlUri` names (template output `TruststoreBucketName`: `crl/crls.pem`).
pub const DEFAULT_CRL_KEY: &str = "crl/crls.pem";
/// The object the stack's `TruststoreUri` names.
pub const DEFAULT_TRUSTSTORE_KEY: &str = "truststore/truststore.pem";

/// What `publish` needs.
#[derive(Debug, Clone)]
pub struct PublishInput {
    /// The new CA bundle; `None` publishes CRLs only.
    pub bundle: Option<Vec<u8>>,
    /// With CRLs only: a bundle to be published next, whose CAs the CRLs must already cover (a new CA's CRL is
    /// published before the CA is trusted). Not uploaded.
    pub next_bundle: Option<Vec<u8>>,
    pub bucket: String,
    pub key: String,
    /// The mTLS custom domain; required with a bundle (it is pinned to the new version). With CRLs only it names
    /// the truststore version the CRLs are checked against (else the latest version of `key`).
    pub domain: Option<String>,
    /// A new CRL bundle, uploaded to `crl_key`.
    pub crls: Option<Vec<u8>>,
    pub crl_key: String,
    /// Each CA's CRL must stay valid at least this long.
    pub min_crl_validity: Duration,
    /// SHA-256 fingerprints of CAs the new bundle may drop.
    pub allow_removed: Vec<String>,
    /// Publish despite refusals, reporting them in [`PublishOutcome::overridden`].
    pub force: bool,
    /// An AWS-compatible endpoint (moto) for S3 and API Gateway; `None` uses the normal AWS endpoints.
    pub endpoint: Option<String>,
    /// A separate endpoint for API Gateway only (defaults to `endpoint`).
    pub apigateway_endpoint: Option<String>,
}

impl PublishInput {
    /// A bundle publication with the defaults: CRL object `crl/crls.pem`, 24 h margin, no removals, no force.
    pub fn bundle(bundle: Vec<u8>, bucket: &str, key: &str, domain: &str) -> Self {
        PublishInput {
            bundle: Some(bundle),
            next_bundle: None,
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            domain: Some(domain.to_owned()),
            crls: None,
            crl_key: DEFAULT_CRL_KEY.to_owned(),
            min_crl_validity: crate::truststore::DEFAULT_MIN_CRL_VALIDITY,
            allow_removed: Vec::new(),
            force: false,
            endpoint: None,
            apigateway_endpoint: None,
        }
    }
}

/// The truststore upload and the domain's new pin.
#[derive(Debug, Clone)]
pub struct Pinned {
    pub version_id: String,
    pub previous_version: Option<String>,
    pub domain_status: Option<String>,
    pub truststore_warnings: Vec<String>,
}

/// What happened.
#[derive(Debug, Clone)]
pub struct PublishOutcome {
    /// Every check that ran, with its findings (errors only when forced).
    pub check: Report,
    /// The errors `force` published over.
    pub overridden: Vec<Finding>,
    /// The version id of the uploaded CRL bundle.
    pub crl_version: Option<String>,
    /// The truststore upload, when a bundle was published.
    pub truststore: Option<Pinned>,
}

/// Why nothing (or not everything) was published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("the bundle or the CRLs would refuse callers; nothing was uploaded")]
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

/// The bytes of `s3://bucket/key` (at `version`, else the latest); `None` when there is no such key.
pub async fn read_object(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    version: Option<&str>,
) -> Result<Option<Vec<u8>>, PublishError> {
    match s3.get_object().bucket(bucket).key(key).set_version_id(version.map(str::to_owned)).send().await {
        Ok(out) => {
            let body = out.body.collect().await.map_err(aws("reading an object"))?;
            Ok(Some(body.into_bytes().to_vec()))
        }
        Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key() || s.code() == Some("NoSuchKey")) => Ok(None),
        Err(e) => Err(aws("reading an object")(e)),
    }
}

fn finding(severity: Severity, code: &'static str, message: String) -> Finding {
    Finding { severity, cert: None, code, message }
}

/// Whether the bucket keeps object versions (rollback needs the old one).
async fn versioned(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<bool, PublishError> {
    match s3.get_bucket_versioning().bucket(bucket).send().await {
        Ok(v) => Ok(v.status().map(|s| s.as_str()) == Some("Enabled")),
        // moto answers with the root element `GetBucketVersioningResponse` where S3 sends `VersioningConfiguration`,
        // which the SDK refuses to parse. The content is the same, so a 200 answer is read for its Status element.
        Err(aws_sdk_s3::error::SdkError::ServiceError(se)) if se.raw().status().as_u16() == 200 => {
            Ok(se.raw().body().bytes().is_some_and(|b| String::from_utf8_lossy(b).contains("<Status>Enabled</Status>")))
        }
        Err(e) => Err(aws("reading bucket versioning")(e)),
    }
}

async fn upload(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, body: &[u8]) -> Result<String, PublishError> {
    let put = s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .content_type("application/x-pem-file")
        .body(body.to_vec().into())
        .send()
        .await
        .map_err(aws("uploading"))?;
    Ok(put
        .version_id()
        .filter(|v| !v.is_empty() && *v != "null")
        .ok_or_else(|| PublishError::Refused(format!("S3 returned no version id for the upload of {key}")))?
        .to_owned())
}

/// The removal check: CAs of the published bundle that `new` drops.
fn removal_findings(published: &[u8], new: &[u8], allowed: &[String], report: &mut Report) {
    let diff = match diff_bundles(published, new) {
        Ok(d) => d,
        Err(e) => {
            report.findings.push(finding(
                Severity::Error,
                "published_truststore_unreadable",
                format!("cannot compare with the published bundle: {e}"),
            ));
            return;
        }
    };
    for removed in diff.removed {
        let allowed = allowed.iter().any(|a| a.eq_ignore_ascii_case(&removed.sha256));
        let (severity, tail) = if allowed {
            (Severity::Warning, "allowed by --allow-removal")
        } else {
            (Severity::Error, "its certificates will fail the TLS handshake; name it with --allow-removal if meant")
        };
        report.findings.push(finding(
            severity,
            "ca_removed",
            format!(
                "the published bundle has CA {} (sha256 {}), the new one does not: {tail}",
                removed.subject, removed.sha256
            ),
        ));
    }
}

/// Runs the whole publish.
pub async fn publish(input: &PublishInput) -> Result<PublishOutcome, PublishError> {
    let now = SystemTime::now();
    let mut report = match &input.bundle {
        Some(b) => check_bundle(b, &CheckOptions { now, ..CheckOptions::default() }),
        None => Report::default(),
    };
    if input.bundle.is_none() && input.crls.is_none() {
        return Err(PublishError::Refused("nothing to publish: give a bundle, CRLs or both".into()));
    }
    if input.bundle.is_some() && input.next_bundle.is_some() {
        return Err(PublishError::Refused("a next bundle goes with CRLs only: publish the bundle itself".into()));
    }
    if input.bundle.is_some() && input.domain.is_none() {
        return Err(PublishError::Refused("a bundle needs the custom domain to pin it to".into()));
    }
    // A bundle that is wrong on its own is refused before any AWS call.
    if report.errors().next().is_some() && !input.force {
        return Err(PublishError::CheckFailed(report));
    }

    let sdk = crate::aws::sdk_config(input.endpoint.as_deref()).await;
    let s3 = crate::aws::s3_client(&sdk, input.endpoint.as_deref());
    let apigw_endpoint = input.apigateway_endpoint.as_deref().or(input.endpoint.as_deref());
    let mut agw_conf = aws_sdk_apigateway::config::Builder::from(&sdk);
    if let Some(e) = apigw_endpoint {
        agw_conf = agw_conf.endpoint_url(e);
    }
    let apigw = aws_sdk_apigateway::Client::from_conf(agw_conf.build());

    // The version the domain pins now: what API Gateway (and, once deployed, the authorizer) trusts.
    let uri = format!("s3://{}/{}", input.bucket, input.key);
    let mut pinned_version = None;
    if let Some(domain_name) = &input.domain {
        let domain =
            apigw.get_domain_name().domain_name(domain_name).send().await.map_err(aws("reading the custom domain"))?;
        let mtls = domain.mutual_tls_authentication().ok_or_else(|| {
            PublishError::Refused(format!("domain {domain_name} has no mutual TLS configured; nothing was uploaded"))
        })?;
        match mtls.truststore_uri() {
            Some(u) if u == uri => {}
            other => {
                return Err(PublishError::Refused(format!(
                    "domain {domain_name} reads its truststore from {}, not {uri}; nothing was uploaded",
                    other.unwrap_or("(none)")
                )))
            }
        }
        pinned_version = mtls.truststore_version().filter(|v| !v.is_empty()).map(str::to_owned);
    }
    if !versioned(&s3, &input.bucket).await? {
        return Err(PublishError::Refused(format!(
            "bucket {} is not versioned: API Gateway pins a truststore version, and a rollback needs the old one; \
             nothing was uploaded",
            input.bucket
        )));
    }

    // The bundle published now: at the domain's pinned version, or (CRLs only, no domain) the latest.
    let published_bundle = if input.domain.is_some() && pinned_version.is_none() {
        None
    } else {
        match read_object(&s3, &input.bucket, &input.key, pinned_version.as_deref()).await {
            Ok(b) => b,
            Err(e) => {
                report.findings.push(finding(
                    Severity::Error,
                    "published_truststore_unreadable",
                    format!("cannot read the published bundle {uri}: {e}"),
                ));
                None
            }
        }
    };
    let published_crls = match read_object(&s3, &input.bucket, &input.crl_key, None).await {
        Ok(c) => c,
        Err(e) => {
            report.findings.push(finding(
                Severity::Error,
                "published_crls_unreadable",
                format!("cannot read the published CRLs s3://{}/{}: {e}", input.bucket, input.crl_key),
            ));
            None
        }
    };

    if let (Some(old), Some(new)) = (&published_bundle, &input.bundle) {
        removal_findings(old, new, &input.allow_removed, &mut report);
    }
    let mut truststores: Vec<(&str, &[u8])> = Vec::new();
    if let Some(b) = &input.bundle {
        truststores.push(("the new bundle", b));
    }
    if let Some(b) = &published_bundle {
        truststores.push(("the published bundle", b));
    }
    if let Some(b) = &input.next_bundle {
        truststores.push(("the next bundle", b));
    }
    let crl_opts = CrlCheckOptions { now, min_validity: input.min_crl_validity };
    match (&input.crls, &published_crls) {
        _ if truststores.is_empty() => report.findings.push(finding(
            Severity::Error,
            "no_truststore",
            format!("no published bundle at {uri} to check the CRLs against"),
        )),
        (Some(new), published) => report.add_crls(check_crls(&truststores, new, published.as_deref(), &crl_opts)),
        (None, Some(published)) => report.add_crls(check_crls(&truststores, published, None, &crl_opts)),
        (None, None) => report.findings.push(finding(
            Severity::Warning,
            "no_crls_published",
            format!(
                "no CRL bundle at s3://{}/{}: CRLs are not required by this publish (if the stack's CrlUri names \
                 another object, pass its key)",
                input.bucket, input.crl_key
            ),
        )),
    }

    let overridden: Vec<Finding> = report.errors().cloned().collect();
    if !overridden.is_empty() && !input.force {
        return Err(PublishError::CheckFailed(report));
    }

    let crl_version = match &input.crls {
        Some(c) => Some(upload(&s3, &input.bucket, &input.crl_key, c).await?),
        None => None,
    };
    let (Some(bundle), Some(domain_name)) = (&input.bundle, &input.domain) else {
        return Ok(PublishOutcome { check: report, overridden, crl_version, truststore: None });
    };
    let version_id = upload(&s3, &input.bucket, &input.key, bundle).await?;
    let updated = apigw
        .update_domain_name()
        .domain_name(domain_name)
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
        check: report,
        overridden,
        crl_version,
        truststore: Some(Pinned {
            version_id,
            previous_version: pinned_version,
            domain_status: updated.domain_name_status().map(|s| s.as_str().to_owned()),
            truststore_warnings,
        }),
    })
}
