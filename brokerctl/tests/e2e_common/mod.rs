//! What the end-to-end suites share: starting the local stack in-process on free ports (on the embedded stores, or
//! with DynamoDB, SSM and S3 on moto, whose endpoint `scripts/with-moto.sh` exports as `TB_MOTO_ENDPOINT`; the moto
//! cases fail, never skip, without it) and HTTPS clients that present the example callers' certificates.
//!
//! Each suite (`tests/e2e*.rs`) is its own crate and uses a part of this module; the rest would be dead code there.
#![allow(dead_code)]

pub mod tokens;

use std::time::Duration;

use brokerctl::devstack::{AwsNames, DevOptions, DevStack};
use serde_json::Value;

#[derive(Debug, Clone, Copy)]
pub enum Mode {
    Embedded,
    Moto,
}

/// A running stack and its state directory, which is removed after the stack stops (fields drop in order).
pub struct Stack {
    pub stack: DevStack,
    _dir: tempfile::TempDir,
}

impl std::ops::Deref for Stack {
    type Target = DevStack;
    fn deref(&self) -> &DevStack {
        &self.stack
    }
}

pub async fn start(mode: Mode, tag: &str, tweak: impl FnOnce(&mut DevOptions)) -> Stack {
    let dir = tempfile::Builder::new().prefix(&format!("brokerctl-e2e-{tag}-")).tempdir().unwrap();
    let mut opts = DevOptions { state_dir: dir.path().to_path_buf(), ..DevOptions::default() };
    if let Mode::Moto = mode {
        let n: u32 = rand::random();
        opts.aws_endpoint = Some(tb_devkit::moto::endpoint());
        // moto serves one request at a time to every suite of this run: queueing is not a failure here.
        opts.aws_operation_timeout = Some(Duration::from_secs(10));
        opts.aws_names = AwsNames {
            quota_table: format!("tb-e2e-{tag}-{n}"),
            ssm_prefix: format!("/tb-e2e-{n}/cognito"),
            bucket: format!("tb-e2e-{}-{n}", tag.replace('_', "-")),
        };
    }
    tweak(&mut opts);
    Stack { stack: DevStack::start(opts).await.expect("local stack starts"), _dir: dir }
}

/// An HTTPS client trusting the dev CA, presenting `client`'s certificate when given.
pub fn client(stack: &DevStack, identity: Option<&str>) -> reqwest::Client {
    let p = &stack.state().paths;
    let ca = std::fs::read(p.ca_cert()).unwrap();
    let mut b = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .timeout(Duration::from_secs(10));
    if let Some(name) = identity {
        let mut pem = std::fs::read(p.client_cert(name)).unwrap();
        pem.extend(std::fs::read(p.client_key(name)).unwrap());
        b = b.identity(reqwest::Identity::from_pem(&pem).unwrap());
    }
    b.build().unwrap()
}

pub async fn token_request(c: &reqwest::Client, url: &str, scope: Option<&str>, bearer: Option<&str>) -> (u16, Value) {
    let mut form = vec![("grant_type", "client_credentials")];
    if let Some(s) = scope {
        form.push(("scope", s));
    }
    let mut req = c.post(format!("{url}/oauth2/token")).form(&form);
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("request completes");
    let status = resp.status().as_u16();
    let body = resp.json::<Value>().await.unwrap_or(Value::Null);
    (status, body)
}

pub fn scopes(body: &Value) -> Vec<String> {
    let mut v: Vec<String> =
        body["scope"].as_str().unwrap_or("").split(' ').filter(|s| !s.is_empty()).map(str::to_owned).collect();
    v.sort();
    v
}

/// A client presenting `cert` (certificate and key PEM), trusting the dev CA.
pub fn client_with(stack: &DevStack, cert: &tb_devkit::pki::IssuedCert) -> reqwest::Client {
    let ca = std::fs::read(stack.state().paths.ca_cert()).unwrap();
    let identity = reqwest::Identity::from_pem(format!("{}{}", cert.pem, cert.key_pem).as_bytes()).unwrap();
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .identity(identity)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// The stack's own CA, to issue certificates the example clients do not have.
pub fn dev_ca(stack: &DevStack) -> tb_devkit::pki::TestCa {
    let p = &stack.state().paths;
    let (cert, key) = (std::fs::read_to_string(p.ca_cert()).unwrap(), std::fs::read_to_string(p.ca_key()).unwrap());
    tb_devkit::pki::TestCa::from_pem(&cert, &key).unwrap()
}

/// One test per mode for each named `async fn(Mode)`: embedded stores, and DynamoDB, SSM and S3 on moto.
macro_rules! both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn embedded() {
                super::$name($crate::e2e_common::Mode::Embedded).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn moto() {
                super::$name($crate::e2e_common::Mode::Moto).await
            }
        }
    )*};
}
