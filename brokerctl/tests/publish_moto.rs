//! `truststore publish` with S3 on moto (`scripts/with-moto.sh` exports `TB_MOTO_ENDPOINT`; these tests fail, never
//! skip, without it).
//!
//! moto 5.2.5 (the newest release) does not implement `UpdateDomainName` and drops `mutualTlsAuthentication` from
//! `CreateDomainName`, so the custom domain's side is served by a small loopback stand-in of API Gateway's REST API
//! (`GET`/`PATCH /domainnames/{name}`, the wire format the SDK speaks) that applies the patch operations it receives.
//! The test then checks what a real domain would hold: the version id S3 (moto) returned for the upload.

use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::routing::get;
use axum::Json;
use brokerctl::publish::{publish, PublishError, PublishInput};
use serde_json::{json, Value};
use tb_devkit::moto;

#[derive(Default)]
struct Domain {
    truststore_uri: String,
    truststore_version: String,
    patches: Vec<Value>,
}

type Shared = Arc<Mutex<Domain>>;

fn domain_json(name: &str, d: &Domain, status: &str, warnings: &[&str]) -> Value {
    json!({
        "domainName": name,
        "domainNameStatus": status,
        "securityPolicy": "TLS_1_2",
        "mutualTlsAuthentication": {
            "truststoreUri": d.truststore_uri,
            "truststoreVersion": d.truststore_version,
            "truststoreWarnings": warnings,
        }
    })
}

async fn get_domain(Path(name): Path<String>, State(s): State<Shared>) -> Json<Value> {
    let d = s.lock().unwrap();
    Json(domain_json(&name, &d, "AVAILABLE", &[]))
}

async fn patch_domain(Path(name): Path<String>, State(s): State<Shared>, Json(body): Json<Value>) -> Json<Value> {
    let mut d = s.lock().unwrap();
    for op in body["patchOperations"].as_array().cloned().unwrap_or_default() {
        if op["op"] == "replace" && op["path"] == "/mutualTlsAuthentication/truststoreVersion" {
            d.truststore_version = op["value"].as_str().unwrap_or_default().to_owned();
        }
        d.patches.push(op);
    }
    Json(domain_json(&name, &d, "UPDATING", &["example warning reported by the domain"]))
}

/// Starts the API Gateway stand-in; returns its endpoint.
async fn apigateway(shared: Shared) -> String {
    let app = axum::Router::new().route("/domainnames/{name}", get(get_domain).patch(patch_domain)).with_state(shared);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

fn ca_bundle(cn: &str, valid_days: i64) -> Vec<u8> {
    let mut p = rcgen::CertificateParams::default();
    p.distinguished_name.push(rcgen::DnType::CommonName, cn);
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    p.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
    let now = time::OffsetDateTime::now_utc();
    p.not_before = now - time::Duration::days(2);
    p.not_after = now + time::Duration::days(valid_days);
    p.self_signed(&rcgen::KeyPair::generate().unwrap()).unwrap().pem().into_bytes()
}

async fn s3() -> aws_sdk_s3::Client {
    moto::s3_client(&moto::sdk_config().await)
}

async fn bucket(s3: &aws_sdk_s3::Client, versioned: bool) -> String {
    let name = format!("tb-publish-{}", rand::random::<u32>());
    if versioned {
        moto::create_versioned_bucket(s3, &name).await;
    } else {
        moto::create_bucket(s3, &name).await;
    }
    name
}

async fn versions(s3: &aws_sdk_s3::Client, bucket: &str) -> Vec<String> {
    let out = s3.list_object_versions().bucket(bucket).send().await.unwrap();
    out.versions().iter().filter_map(|v| v.version_id().map(str::to_owned)).collect()
}

#[tokio::test]
async fn publish_creates_a_new_version_and_pins_the_domain_to_it() {
    let s3 = s3().await;
    let b = bucket(&s3, true).await;
    let shared: Shared = Arc::new(Mutex::new(Domain {
        truststore_uri: format!("s3://{b}/truststore.pem"),
        truststore_version: "initial".into(),
        patches: Vec::new(),
    }));
    let agw = apigateway(shared.clone()).await;
    let mut input = PublishInput {
        bundle: ca_bundle("Publish Root 1", 3650),
        bucket: b.clone(),
        key: "truststore.pem".into(),
        domain: "mtls.example.internal".into(),
        endpoint: Some(moto::endpoint()),
        apigateway_endpoint: Some(agw),
    };
    let first = publish(&input).await.unwrap();
    assert_eq!(first.previous_version.as_deref(), Some("initial"));
    assert_eq!(shared.lock().unwrap().truststore_version, first.version_id);
    assert_eq!(first.truststore_warnings, ["example warning reported by the domain"]);
    assert_eq!(first.domain_status.as_deref(), Some("UPDATING"));

    input.bundle = ca_bundle("Publish Root 2", 3650);
    let second = publish(&input).await.unwrap();
    assert_ne!(second.version_id, first.version_id);
    assert_eq!(second.previous_version.as_deref(), Some(first.version_id.as_str()));
    assert_eq!(shared.lock().unwrap().truststore_version, second.version_id);
    let vs = versions(&s3, &b).await;
    assert_eq!(vs.len(), 2, "{vs:?}");
    assert!(vs.contains(&first.version_id) && vs.contains(&second.version_id));
    let got = s3.get_object().bucket(&b).key("truststore.pem").version_id(&second.version_id).send().await.unwrap();
    assert_eq!(got.body.collect().await.unwrap().into_bytes().to_vec(), input.bundle);
    let patches = shared.lock().unwrap().patches.clone();
    assert_eq!(patches.len(), 2);
    assert_eq!(
        patches[1],
        json!({"op": "replace", "path": "/mutualTlsAuthentication/truststoreVersion", "value": second.version_id})
    );
}

#[tokio::test]
async fn publish_changes_nothing_when_anything_is_wrong() {
    let s3 = s3().await;
    let b = bucket(&s3, true).await;
    let shared: Shared = Arc::new(Mutex::new(Domain {
        truststore_uri: format!("s3://{b}/truststore.pem"),
        truststore_version: "initial".into(),
        patches: Vec::new(),
    }));
    let agw = apigateway(shared.clone()).await;
    let base = PublishInput {
        bundle: ca_bundle("Good Root", 3650),
        bucket: b.clone(),
        key: "truststore.pem".into(),
        domain: "mtls.example.internal".into(),
        endpoint: Some(moto::endpoint()),
        apigateway_endpoint: Some(agw.clone()),
    };

    // An expired CA: the check refuses before any AWS call.
    let e = publish(&PublishInput { bundle: ca_bundle("Expired Root", -1), ..base.clone() }).await.unwrap_err();
    assert!(matches!(&e, PublishError::CheckFailed(r) if r.has("expired")), "{e}");

    // The domain reads another object.
    let e = publish(&PublishInput { key: "other.pem".into(), ..base.clone() }).await.unwrap_err();
    assert!(e.to_string().contains("reads its truststore from"), "{e}");

    // An unversioned bucket cannot be pinned.
    let plain = bucket(&s3, false).await;
    shared.lock().unwrap().truststore_uri = format!("s3://{plain}/truststore.pem");
    let e = publish(&PublishInput { bucket: plain.clone(), ..base.clone() }).await.unwrap_err();
    assert!(e.to_string().contains("not versioned"), "{e}");

    assert!(versions(&s3, &b).await.is_empty());
    assert!(versions(&s3, &plain).await.is_empty());
    let d = shared.lock().unwrap();
    assert!(d.patches.is_empty());
    assert_eq!(d.truststore_version, "initial");
}

/// What moto itself does with the domain today: it keeps no mutual-TLS settings, and publish refuses such a domain
/// rather than upload a truststore nothing will read.
#[tokio::test]
async fn publish_refuses_a_domain_without_mutual_tls_in_moto() {
    let ep = moto::endpoint();
    let agw = aws_sdk_apigateway::Client::new(&moto::sdk_config().await);
    let name = format!("mtls-{}.example.internal", rand::random::<u32>());
    agw.create_domain_name()
        .domain_name(&name)
        .regional_certificate_arn("arn:aws:acm:us-east-1:123456789012:certificate/abc")
        .send()
        .await
        .unwrap();
    let s3 = s3().await;
    let b = bucket(&s3, true).await;
    let e = publish(&PublishInput {
        bundle: ca_bundle("Root", 3650),
        bucket: b.clone(),
        key: "truststore.pem".into(),
        domain: name,
        endpoint: Some(ep),
        apigateway_endpoint: None,
    })
    .await
    .unwrap_err();
    assert!(e.to_string().contains("no mutual TLS"), "{e}");
    assert!(versions(&s3, &b).await.is_empty());
}
