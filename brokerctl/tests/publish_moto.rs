//! `truststore publish` with S3 on moto (`scripts/with-moto.sh` exports `TB_MOTO_ENDPOINT`; these tests fail, never
//! skip, without it).
//!
//! moto 5.2.5 (the newest release) does not implement `UpdateDomainName` and drops `mutualTlsAuthentication` from
//! `CreateDomainName`, so the custom domain's side is served by a small loopback stand-in of API Gateway's REST API
//! (`GET`/`PATCH /domainnames/{name}`, the wire format the SDK speaks) that applies the patch operations it receives.
//! The test then checks what a real domain would hold: the version id S3 (moto) returned for the upload.
//!
//! Each refusal (a bundle or a CRL set that would turn callers into 401s) is shown to write nothing: no new object
//! version in the bucket and no patch of the domain; `--force` publishes over it and reports what it overrode.

use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::routing::get;
use axum::Json;
use std::time::{Duration, SystemTime};

use brokerctl::publish::{publish, PublishError, PublishInput, PublishOutcome};
use serde_json::{json, Value};
use tb_devkit::moto;
use tb_devkit::pki::TestCa;

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

const HOUR: Duration = Duration::from_secs(3600);
const DOMAIN: &str = "mtls.example.internal";
const KEY: &str = "truststore.pem";
const CRL_KEY: &str = "crl/crls.pem";

fn crl(ca: &TestCa, number: u64, valid_for: Duration) -> String {
    let now = SystemTime::now();
    ca.crl_builder().validity(now - HOUR, now + valid_for).number(number).build().unwrap().pem
}

fn pem(cas: &[&TestCa]) -> Vec<u8> {
    cas.iter().map(|c| c.cert_pem()).collect::<String>().into_bytes()
}

/// A versioned bucket holding a published bundle (and, when given, a CRL bundle) and a domain pinned to it.
struct Fixture {
    s3: aws_sdk_s3::Client,
    bucket: String,
    domain: Shared,
    pinned: String,
    input: PublishInput,
}

impl Fixture {
    async fn new(published: &[u8], crls: Option<&str>) -> Fixture {
        let s3 = s3().await;
        let bucket = bucket(&s3, true).await;
        let put = s3.put_object().bucket(&bucket).key(KEY).body(published.to_vec().into()).send().await.unwrap();
        let pinned = put.version_id().unwrap().to_owned();
        if let Some(c) = crls {
            s3.put_object().bucket(&bucket).key(CRL_KEY).body(c.as_bytes().to_vec().into()).send().await.unwrap();
        }
        let domain: Shared = Arc::new(Mutex::new(Domain {
            truststore_uri: format!("s3://{bucket}/{KEY}"),
            truststore_version: pinned.clone(),
            patches: Vec::new(),
        }));
        let mut input = PublishInput::bundle(published.to_vec(), &bucket, KEY, DOMAIN);
        input.endpoint = Some(moto::endpoint());
        input.apigateway_endpoint = Some(apigateway(domain.clone()).await);
        Fixture { s3, bucket, domain, pinned, input }
    }

    /// Object versions in the bucket.
    async fn versions(&self) -> usize {
        versions(&self.s3, &self.bucket).await.len()
    }

    async fn object(&self, key: &str) -> Vec<u8> {
        let got = self.s3.get_object().bucket(&self.bucket).key(key).send().await.unwrap();
        got.body.collect().await.unwrap().into_bytes().to_vec()
    }

    /// Publishes `input`, expects a refusal carrying `code`, and checks that nothing was written.
    async fn refused(&self, input: &PublishInput, code: &str) {
        let before = self.versions().await;
        let e = publish(input).await.unwrap_err();
        match &e {
            PublishError::CheckFailed(r) => assert!(r.has(code), "want {code}: {}", r.render("new")),
            other => panic!("want a refusal with {code}, got {other}"),
        }
        assert_eq!(self.versions().await, before, "nothing uploaded");
        let d = self.domain.lock().unwrap();
        assert!(d.patches.is_empty(), "domain untouched");
        assert_eq!(d.truststore_version, self.pinned);
    }
}

fn pinned(o: &PublishOutcome) -> &brokerctl::publish::Pinned {
    o.truststore.as_ref().expect("a bundle was published")
}

#[tokio::test]
async fn publish_creates_a_new_version_and_pins_the_domain_to_it() {
    let one = TestCa::root("Publish Root 1").unwrap();
    let two = TestCa::root("Publish Root 2").unwrap();
    let f = Fixture::new(&pem(&[&one]), None).await;
    let mut input = PublishInput { bundle: Some(pem(&[&one, &two])), ..f.input.clone() };
    let first = publish(&input).await.unwrap();
    let p1 = pinned(&first).clone();
    assert_eq!(p1.previous_version.as_deref(), Some(f.pinned.as_str()));
    assert_eq!(f.domain.lock().unwrap().truststore_version, p1.version_id);
    assert_eq!(p1.truststore_warnings, ["example warning reported by the domain"]);
    assert_eq!(p1.domain_status.as_deref(), Some("UPDATING"));
    assert!(first.check.has("no_crls_published"), "no CRL object: CRLs are not required, said as a warning");
    assert!(first.overridden.is_empty() && first.crl_version.is_none());

    // Dropping a CA needs its fingerprint named.
    input.bundle = Some(pem(&[&two]));
    input.allow_removed = vec![brokerctl::truststore::fingerprint(one.cert_der())];
    let second = publish(&input).await.unwrap();
    let p2 = pinned(&second);
    assert!(second.check.has("ca_removed") && second.check.errors().next().is_none());
    assert_ne!(p2.version_id, p1.version_id);
    assert_eq!(p2.previous_version.as_deref(), Some(p1.version_id.as_str()));
    assert_eq!(f.domain.lock().unwrap().truststore_version, p2.version_id);
    let vs = versions(&f.s3, &f.bucket).await;
    assert_eq!(vs.len(), 3, "{vs:?}");
    assert!(vs.contains(&p1.version_id) && vs.contains(&p2.version_id));
    let got = f.s3.get_object().bucket(&f.bucket).key(KEY).version_id(&p2.version_id).send().await.unwrap();
    assert_eq!(got.body.collect().await.unwrap().into_bytes().to_vec(), pem(&[&two]));
    let patches = f.domain.lock().unwrap().patches.clone();
    assert_eq!(patches.len(), 2);
    assert_eq!(
        patches[1],
        json!({"op": "replace", "path": "/mutualTlsAuthentication/truststoreVersion", "value": p2.version_id})
    );
}

#[tokio::test]
async fn publish_changes_nothing_when_anything_is_wrong() {
    let root = TestCa::root("Good Root").unwrap();
    let f = Fixture::new(&pem(&[&root]), None).await;

    // An expired CA: the check refuses before any AWS call.
    let expired = ca_bundle("Expired Root", -1);
    f.refused(&PublishInput { bundle: Some(expired), ..f.input.clone() }, "expired").await;

    // The domain reads another object.
    let e = publish(&PublishInput { key: "other.pem".into(), ..f.input.clone() }).await.unwrap_err();
    assert!(e.to_string().contains("reads its truststore from"), "{e}");

    // An unversioned bucket cannot be pinned.
    let plain = bucket(&f.s3, false).await;
    f.domain.lock().unwrap().truststore_uri = format!("s3://{plain}/{KEY}");
    let e = publish(&PublishInput { bucket: plain.clone(), ..f.input.clone() }).await.unwrap_err();
    assert!(e.to_string().contains("not versioned"), "{e}");
    assert!(versions(&f.s3, &plain).await.is_empty());
    assert_eq!(f.versions().await, 1);
    assert!(f.domain.lock().unwrap().patches.is_empty());
}

#[tokio::test]
async fn publish_refuses_a_new_ca_the_published_crls_do_not_cover() {
    let old = TestCa::root("Covered Root").unwrap();
    let new = TestCa::root("Uncovered Root").unwrap();
    let f = Fixture::new(&pem(&[&old]), Some(&crl(&old, 1, 48 * HOUR))).await;
    let input = PublishInput { bundle: Some(pem(&[&old, &new])), ..f.input.clone() };
    f.refused(&input, "crl_missing").await;

    // Its CRL published with the bundle: accepted, and uploaded before the bundle.
    let crls = format!("{}{}", crl(&old, 2, 48 * HOUR), crl(&new, 1, 48 * HOUR));
    let o = publish(&PublishInput { crls: Some(crls.clone().into_bytes()), ..input }).await.unwrap();
    assert!(o.check.errors().next().is_none(), "{}", o.check.render("new"));
    assert_eq!(f.object(CRL_KEY).await, crls.as_bytes());
    let crl_version = o.crl_version.clone().unwrap();
    let listed = f.s3.list_object_versions().bucket(&f.bucket).send().await.unwrap();
    let at =
        |v: &str| listed.versions().iter().find(|x| x.version_id() == Some(v)).and_then(|x| x.last_modified().cloned());
    assert!(at(&crl_version) <= at(&pinned(&o).version_id), "CRLs first");
}

#[tokio::test]
async fn publish_refuses_crls_that_would_refuse_callers() {
    let root = TestCa::root("CRL Root").unwrap();
    let issuing = root.intermediate("CRL Issuing").unwrap();
    let bundle = issuing.chain_bundle_pem().into_bytes();
    let published = format!("{}{}", crl(&root, 5, 48 * HOUR), crl(&issuing, 5, 48 * HOUR));
    let f = Fixture::new(&bundle, Some(&published)).await;
    let crls_only = |crls: String| PublishInput { bundle: None, crls: Some(crls.into_bytes()), ..f.input.clone() };

    // A CRL no CA of the truststore signed.
    let stranger = TestCa::root("Stranger").unwrap();
    let extra = format!("{}{}{}", crl(&root, 6, 48 * HOUR), crl(&issuing, 6, 48 * HOUR), crl(&stranger, 1, 48 * HOUR));
    f.refused(&crls_only(extra), "crl_unknown_issuer").await;
    // A CRL older than the published one.
    f.refused(&crls_only(format!("{}{}", crl(&root, 6, 48 * HOUR), crl(&issuing, 4, 96 * HOUR))), "crl_rollback").await;
    // A CRL that lapses within the margin.
    f.refused(&crls_only(format!("{}{}", crl(&root, 6, 48 * HOUR), crl(&issuing, 6, 2 * HOUR))), "crl_expiring").await;
    // A CA left without a CRL.
    f.refused(&crls_only(crl(&root, 6, 48 * HOUR)), "crl_missing").await;

    // A new CA's CRL before the CA itself: refused without the bundle it belongs to, accepted with it.
    let new_ca = TestCa::root("Next Root").unwrap();
    let ahead = format!("{}{}{}", crl(&root, 6, 48 * HOUR), crl(&issuing, 6, 48 * HOUR), crl(&new_ca, 1, 48 * HOUR));
    f.refused(&crls_only(ahead.clone()), "crl_unknown_issuer").await;
    let mut next_bundle = bundle.clone();
    next_bundle.extend_from_slice(new_ca.cert_pem().as_bytes());
    let without_its_crl =
        PublishInput { next_bundle: Some(next_bundle.clone()), ..crls_only(extra_free(&root, &issuing)) };
    f.refused(&without_its_crl, "crl_missing").await;
    let o = publish(&PublishInput { next_bundle: Some(next_bundle), ..crls_only(ahead.clone()) }).await.unwrap();
    assert!(o.truststore.is_none() && o.crl_version.is_some(), "{o:?}");
    assert_eq!(f.object(CRL_KEY).await, ahead.as_bytes());
    assert_eq!(f.object(KEY).await, bundle, "the next bundle is not uploaded");

    // The next CRLs are published on their own: no truststore upload, no domain change.
    let next = format!("{}{}", crl(&root, 7, 48 * HOUR), crl(&issuing, 7, 48 * HOUR));
    let o = publish(&crls_only(next.clone())).await.unwrap();
    assert!(o.truststore.is_none() && o.crl_version.is_some(), "{o:?}");
    assert_eq!(f.object(CRL_KEY).await, next.as_bytes());
    assert!(f.domain.lock().unwrap().patches.is_empty());
    assert_eq!(f.object(KEY).await, bundle);
}

/// The CRLs of the two CAs of the published bundle, newer than those published.
fn extra_free(root: &TestCa, issuing: &TestCa) -> String {
    format!("{}{}", crl(root, 6, 48 * HOUR), crl(issuing, 6, 48 * HOUR))
}

#[tokio::test]
async fn publish_refuses_dropping_a_published_ca_unless_named() {
    let keep = TestCa::root("Kept Root").unwrap();
    let drop = TestCa::root("Dropped Root").unwrap();
    let f = Fixture::new(&pem(&[&keep, &drop]), None).await;
    let input = PublishInput { bundle: Some(pem(&[&keep])), ..f.input.clone() };
    f.refused(&input, "ca_removed").await;
    let wrong =
        PublishInput { allow_removed: vec![brokerctl::truststore::fingerprint(keep.cert_der())], ..input.clone() };
    f.refused(&wrong, "ca_removed").await;
    let named = PublishInput { allow_removed: vec![brokerctl::truststore::fingerprint(drop.cert_der())], ..input };
    let o = publish(&named).await.unwrap();
    assert_eq!(f.domain.lock().unwrap().truststore_version, pinned(&o).version_id);
}

#[tokio::test]
async fn force_publishes_over_a_refusal_and_reports_it() {
    let old = TestCa::root("Forced Root").unwrap();
    let new = TestCa::root("Forced New Root").unwrap();
    let f = Fixture::new(&pem(&[&old]), Some(&crl(&old, 1, 48 * HOUR))).await;
    let input = PublishInput { bundle: Some(pem(&[&new])), force: true, ..f.input.clone() };
    let o = publish(&input).await.unwrap();
    let codes: Vec<&str> = o.overridden.iter().map(|f| f.code).collect();
    assert!(codes.contains(&"crl_missing") && codes.contains(&"ca_removed"), "{codes:?}");
    assert_eq!(f.domain.lock().unwrap().truststore_version, pinned(&o).version_id);
    assert_eq!(f.object(KEY).await, pem(&[&new]));
    assert_eq!(f.versions().await, 3, "the seeded bundle and CRLs, and the forced bundle");
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
    let mut input = PublishInput::bundle(ca_bundle("Root", 3650), &b, KEY, &name);
    input.endpoint = Some(ep);
    let e = publish(&input).await.unwrap_err();
    assert!(e.to_string().contains("no mutual TLS"), "{e}");
    assert!(versions(&s3, &b).await.is_empty());
}

/// `truststore check --published s3://…` reads the CRL bundle published now from S3 for the rollback check.
#[tokio::test]
async fn check_reads_the_published_crls_from_s3() {
    let root = TestCa::root("S3 Check Root").unwrap();
    let f = Fixture::new(&pem(&[&root]), Some(&crl(&root, 5, 48 * HOUR))).await;
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle.pem");
    std::fs::write(&bundle, pem(&[&root])).unwrap();
    let run = |number: u64| {
        let crls = dir.path().join(format!("crls-{number}.pem"));
        std::fs::write(&crls, crl(&root, number, 48 * HOUR)).unwrap();
        let published = format!("s3://{}/{CRL_KEY}", f.bucket);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_brokerctl"))
            .args(["truststore", "check", &bundle.display().to_string(), "--crls", &crls.display().to_string()])
            .args(["--published", &published, "--endpoint", &moto::endpoint()])
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let (code, out) = run(4);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("crl_rollback"), "{out}");
    let (code, out) = run(6);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("(published number 0x5)"), "{out}");
}
