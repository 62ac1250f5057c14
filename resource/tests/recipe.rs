//! The recipes of `docs/resource-servers.md`, run so they cannot rot: the Rust recipe between the markers below is the
//! document's code block verbatim (a test compares the two), and the document's shell check is taken from the
//! document and run on real certificates and tokens.

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::Jwk;
use serde_json::json;
use tb_devkit::jwt::PartnerKey;
use tb_devkit::pki::{IssuedCert, TestCa};
use tb_resource::{certificate_thumbprint, BindingError};

const DOC: &str = include_str!("../../docs/resource-servers.md");
const THIS_FILE: &str = include_str!("recipe.rs");

// recipe: begin
use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

fn authorize(
    token: &str,
    key: &DecodingKey,
    iss: &str,
    client_id: &str,
    scope: &str,
    cert: Option<&[u8]>,
) -> Result<Map<String, Value>, (u16, &'static str)> {
    let mut v = Validation::new(Algorithm::RS256); // RS256 only; `exp` checked
    v.set_issuer(&[iss]);
    v.set_required_spec_claims(&["exp", "iss", "sub"]);
    v.validate_aud = false; // Cognito access tokens name their app client in `client_id`, not `aud`
    v.validate_nbf = true;
    let claims = decode::<Map<String, Value>>(token, key, &v).map_err(|_| (401, "invalid token"))?.claims;
    let s = |name: &str| claims.get(name).and_then(Value::as_str);
    if s("token_use") != Some("access") || s("client_id") != Some(client_id) || s("tb:callerId").is_none() {
        return Err((401, "not an access token of this broker for this client"));
    }
    tb_resource::check_certificate_binding(&claims, cert).map_err(|e| (401, e.error_description()))?;
    if !s("scope").is_some_and(|granted| granted.split(' ').any(|g| g == scope)) {
        return Err((403, "insufficient scope"));
    }
    Ok(claims)
}
// recipe: end

const ISS: &str = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_recipe";
const CLIENT: &str = "recipe-app-client";
const READ: &str = "customer-api/read";

/// The text of the first fenced block of `lang` after `heading` in the document.
fn doc_block(heading: &str, lang: &str) -> &'static str {
    let section = &DOC[DOC.find(heading).unwrap_or_else(|| panic!("no {heading} in the document"))..];
    let open = format!("```{lang}\n");
    let start = section.find(&open).unwrap_or_else(|| panic!("no {lang} block after {heading}")) + open.len();
    let len = section[start..].find("```").expect("the block ends");
    &section[start..start + len]
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// Claims in the shape of a Cognito client-credentials access token with the broker's caller claims.
fn claims() -> Value {
    let now = now();
    json!({
        "sub": CLIENT, "token_use": "access", "scope": format!("{READ} customer-api/write"), "auth_time": now,
        "iss": ISS, "exp": now + 300, "iat": now, "version": 2, "jti": "0c0ffee0-0000-4000-8000-000000000000",
        "client_id": CLIENT, "tb:callerId": "order-processing", "tb:authMethod": "mtls",
        "tb:credentialFingerprint": "x", "tb:policyVersion": "0123456789abcdef",
    })
}

struct Setup {
    key: PartnerKey,
    decoding: DecodingKey,
    own: IssuedCert,
    other: IssuedCert,
}

fn setup() -> Setup {
    let key = PartnerKey::rsa("recipe-1").unwrap();
    let jwk: Jwk = serde_json::from_value(key.jwk()).unwrap();
    let decoding = DecodingKey::from_jwk(&jwk).unwrap();
    let ca = TestCa::root("Recipe Test CA").unwrap();
    let own = ca.issue_client().cn("own").build().unwrap();
    let other = ca.issue_client().cn("other").build().unwrap();
    Setup { key, decoding, own, other }
}

impl Setup {
    fn token(&self, edit: impl FnOnce(&mut Value)) -> String {
        let mut c = claims();
        edit(&mut c);
        self.key.token(&c).unwrap()
    }

    fn check(&self, token: &str, cert: Option<&IssuedCert>) -> Result<Map<String, Value>, (u16, &'static str)> {
        authorize(token, &self.decoding, ISS, CLIENT, READ, cert.map(|c| c.der.as_slice()))
    }
}

#[test]
fn the_documented_recipe_is_this_code() {
    let begin = "// recipe: begin\n";
    let start = THIS_FILE.find(begin).unwrap() + begin.len();
    let end = THIS_FILE.find("// recipe: end").unwrap();
    assert_eq!(doc_block("## Recipe (Rust)", "rust"), &THIS_FILE[start..end]);
}

#[test]
fn the_recipe_serves_a_bound_token_only_with_its_certificate() {
    let s = setup();
    let bound = s.token(|c| c["cnf"] = json!({ "x5t#S256": certificate_thumbprint(&s.own.der) }));
    let claims = s.check(&bound, Some(&s.own)).unwrap();
    assert_eq!(claims["tb:callerId"], "order-processing");
    assert_eq!(s.check(&bound, Some(&s.other)), Err((401, BindingError::Mismatch.error_description())));
    assert_eq!(s.check(&bound, None), Err((401, BindingError::NoCertificate.error_description())));
    let unbound = s.token(|_| {});
    assert!(s.check(&unbound, None).is_ok());
    assert!(s.check(&unbound, Some(&s.other)).is_ok());
    let odd = s.token(|c| c["cnf"] = json!({ "jkt": certificate_thumbprint(&s.own.der) }));
    assert_eq!(s.check(&odd, Some(&s.own)), Err((401, BindingError::Malformed.error_description())));
}

#[test]
fn the_recipe_refuses_what_the_document_lists() {
    let s = setup();
    let invalid = |what: &str, token: String| {
        assert!(matches!(s.check(&token, Some(&s.own)), Err((401, _))), "{what}");
    };
    invalid("another issuer", s.token(|c| c["iss"] = json!("https://cognito-idp.eu-west-1.amazonaws.com/other")));
    invalid("an ID token", s.token(|c| c["token_use"] = json!("id")));
    invalid("another app client", s.token(|c| c["client_id"] = json!("someone-else")));
    invalid("no caller claims", s.token(|c| drop(c.as_object_mut().unwrap().remove("tb:callerId"))));
    invalid("expired", s.token(|c| c["exp"] = json!(now() - 3600)));
    invalid("not yet valid", s.token(|c| c["nbf"] = json!(now() + 3600)));
    invalid("no exp", s.token(|c| drop(c.as_object_mut().unwrap().remove("exp"))));
    let forged = PartnerKey::rsa("recipe-1").unwrap().token(&claims()).unwrap();
    invalid("another key with the same kid", forged);
    let bound_elsewhere = s.token(|c| {
        c["cnf"] = json!({ "x5t#S256": certificate_thumbprint(&s.other.der) });
        c["scope"] = json!("customer-api/write");
    });
    invalid("a binding failure before the scope", bound_elsewhere);
    assert_eq!(s.check(&s.token(|c| c["scope"] = json!("customer-api/write")), None), Err((403, "insufficient scope")));
}

/// Runs the document's shell check with `CERT` (written to a file) and `TOKEN`: its exit status and output.
fn shell_check(cert: &IssuedCert, token: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("client.pem");
    std::fs::write(&path, &cert.pem).unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg(doc_block("## Checking a thumbprint by hand", "sh"))
        .env("CERT", &path)
        .env("TOKEN", token)
        .output()
        .expect("sh runs (the documented check needs openssl)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.is_empty(), "the shell check wrote errors: {stderr}");
    (out.status.success(), String::from_utf8(out.stdout).unwrap())
}

#[test]
fn the_documented_shell_check_computes_the_same_thumbprint_and_compares_it() {
    let s = setup();
    let thumbprint = certificate_thumbprint(&s.own.der);
    let bound = s.token(|c| c["cnf"] = json!({ "x5t#S256": thumbprint }));
    let (ok, out) = shell_check(&s.own, &bound);
    assert_eq!(out, format!("certificate: {thumbprint}\ntoken:       {thumbprint}\n"));
    assert!(ok);
    let (ok, out) = shell_check(&s.other, &bound);
    assert!(out.starts_with(&format!("certificate: {}\n", certificate_thumbprint(&s.other.der))), "{out}");
    assert!(!ok, "{out}");
    let (ok, out) = shell_check(&s.own, &s.token(|_| {}));
    assert!(out.ends_with("token:       (not bound)\n"), "{out}");
    assert!(!ok, "{out}");
}
