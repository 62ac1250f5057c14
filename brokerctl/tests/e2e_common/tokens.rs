//! What the claims suites share: the example clients' certificate thumbprints, the claims of a token the stack
//! issued, the resource server's answers, and direct calls to the Cognito stand-in by someone holding an app
//! client's secret (both entry points: `/oauth2/token` with `aws_client_metadata`, and `GetClientToken` through the
//! real AWS SDK).

use std::collections::BTreeMap;

use aws_sdk_cognitoidentityprovider::error::ProvideErrorMetadata as _;
use brokerctl::devstack::state::AppClientSecret;
use brokerctl::devstack::DevStack;
use serde_json::Value;
use tb_devkit::cognito::AccessTokenClaims;

/// The DER of an example client's certificate in the state directory.
pub fn cert_der(stack: &DevStack, name: &str) -> Vec<u8> {
    let pem = std::fs::read(stack.state().paths.client_cert(name)).unwrap();
    let (_, parsed) = x509_parser::pem::parse_x509_pem(&pem).expect("a PEM certificate");
    parsed.contents
}

/// The RFC 8705 `x5t#S256` thumbprint of an example client's certificate, computed by the library resource servers
/// use.
pub fn thumbprint(stack: &DevStack, name: &str) -> String {
    tb_resource::certificate_thumbprint(&cert_der(stack, name))
}

/// The claims of an access token the stack's stand-in signed (its signature checked).
pub fn claims_of(stack: &DevStack, body: &Value) -> AccessTokenClaims {
    let token = body["access_token"].as_str().unwrap_or_else(|| panic!("no access_token in {body}"));
    stack.standin().expect("the stand-in runs").verify_access_token(token).expect("a token the stand-in signed")
}

/// One app client's secret from the state directory.
pub fn secret<'a>(stack: &'a DevStack, app_client: &str) -> &'a AppClientSecret {
    stack.state().secrets.iter().find(|s| s.app_client == app_client).expect("the app client has a secret")
}

/// A resource-server answer: status, `WWW-Authenticate` and the JSON body.
pub async fn resource_call(
    c: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: &str,
) -> (u16, String, Value) {
    let r = c.request(method, url).bearer_auth(token).send().await.expect("the resource server answers");
    let status = r.status().as_u16();
    let www = r.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    (status, www, r.json().await.unwrap_or(Value::Null))
}

/// What the stand-in answered a direct token request: the access token, or the error it gave.
#[derive(Debug)]
pub enum Direct {
    Token(String),
    Refused(String),
}

/// `POST /oauth2/token` on the stand-in with `app_client`'s own id and secret (Basic), and `metadata` as
/// `aws_client_metadata` when given.
pub async fn direct_hosted(stack: &DevStack, app_client: &str, metadata: Option<&BTreeMap<String, String>>) -> Direct {
    let s = secret(stack, app_client);
    let mut form = vec![("grant_type".to_owned(), "client_credentials".to_owned())];
    if let Some(m) = metadata {
        form.push(("aws_client_metadata".into(), serde_json::to_string(m).unwrap()));
    }
    let resp = reqwest::Client::new()
        .post(stack.standin().unwrap().token_url())
        .basic_auth(&s.client_id, Some(&s.client_secret))
        .form(&form)
        .send()
        .await
        .expect("the stand-in answers");
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    match (status, body["access_token"].as_str()) {
        (200, Some(t)) => Direct::Token(t.to_owned()),
        _ => Direct::Refused(format!("{status} {}", body["error"].as_str().unwrap_or("?"))),
    }
}

/// `GetClientToken` on the stand-in through the AWS SDK with `app_client`'s own id and secret, and `metadata` as
/// `ClientMetadata` when given.
pub async fn direct_api(stack: &DevStack, app_client: &str, metadata: Option<&BTreeMap<String, String>>) -> Direct {
    let s = secret(stack, app_client);
    let sdk = tb_devkit::moto::sdk_config_at(&stack.standin().unwrap().base_url(), "us-east-1").await;
    let conf = aws_sdk_cognitoidentityprovider::config::Builder::from(&sdk)
        .retry_config(aws_sdk_cognitoidentityprovider::config::retry::RetryConfig::disabled())
        .build();
    let call = aws_sdk_cognitoidentityprovider::Client::from_conf(conf)
        .get_client_token()
        .client_id(&s.client_id)
        .secret(&s.client_secret)
        .set_client_metadata(metadata.map(|m| m.clone().into_iter().collect()));
    match call.send().await {
        Ok(out) => Direct::Token(
            out.client_authentication_result().and_then(|r| r.access_token()).expect("a token").to_owned(),
        ),
        Err(e) => Direct::Refused(e.code().unwrap_or("no error code").to_owned()),
    }
}
