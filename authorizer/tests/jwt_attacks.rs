//! Attack suite for the partner-JWT half of the authorizer: every token here is built the way an attacker (or a
//! careless partner) would, with keys generated at test time, and must be refused with one exact reason.
//! Positive tests prove the same setup accepts the real thing, so the refusals are not an artefact of a broken
//! fixture.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::Algorithm;
use proptest::prelude::*;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use tb_authorizer::{HttpJwksFetcher, JwksFetcherConfig, MemoryJwksFetcher};
use tb_authorizer::{JwtConfig, JwtError, JwtVerifier, VerifiedJwt};
use tb_devkit::jwt::{jwks, now, sign_hs256, standard_claims, unsigned, JwksServer, PartnerKey};
use tb_shared::policy::{IdentityKey, Policy};

const ISS_A: &str = "https://idp.a.example";
const ISS_B: &str = "https://idp.b.example";
const JWKS_A: &str = "https://idp.a.example/.well-known/jwks.json";
const JWKS_B: &str = "https://idp.b.example/.well-known/jwks.json";
const AUD: &str = "https://token-broker.test";
const SUB_A: &str = "a-billing-sync";
const SUB_B: &str = "b-client";
/// Issuer C is shaped like Amazon Cognito: its access tokens carry the app client in `client_id` and no `aud`.
const ISS_C: &str = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Cpool";
const JWKS_C: &str = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Cpool/.well-known/jwks.json";
const CLIENT_C: &str = "4c1ientc0gn1t0app1d";
const LEEWAY: u64 = 5;
const MAX_AGE: u64 = 300;

fn policy_yaml(jwks_a: &str, jwks_b: &str) -> String {
    format!(
        r#"
version: 1
callers:
  - id: partner-a
    identities: [{{ type: jwt, issuer: "{ISS_A}", subject: "{SUB_A}" }}]
    cognito_client: partner-a
    allowed_scopes: [api/read]
    max_token_lifetime_seconds: 900
    quotas: unlimited
  - id: partner-b
    identities: [{{ type: jwt, issuer: "{ISS_B}", subject: "{SUB_B}" }}]
    cognito_client: partner-b
    allowed_scopes: [api/read]
    max_token_lifetime_seconds: 900
    quotas: unlimited
  - id: partner-c
    identities: [{{ type: jwt, issuer: "{ISS_C}", subject: "{CLIENT_C}" }}]
    cognito_client: partner-c
    allowed_scopes: [api/read]
    max_token_lifetime_seconds: 900
    quotas: unlimited
issuers:
  - issuer: "{ISS_A}"
    jwks_url: "{jwks_a}"
    audiences: ["{AUD}", "https://other-audience.test"]
    algorithms: [RS256, ES256]
    max_token_age_seconds: {MAX_AGE}
    leeway_seconds: {LEEWAY}
  - issuer: "{ISS_B}"
    jwks_url: "{jwks_b}"
    audiences: ["{AUD}"]
    algorithms: [RS256, PS256]
    max_token_age_seconds: {MAX_AGE}
    leeway_seconds: {LEEWAY}
    subject_claim: client_id
  - issuer: "{ISS_C}"
    jwks_url: "{JWKS_C}"
    audiences: ["{CLIENT_C}"]
    audience_claim: client_id
    required_claims: [jti, token_use]
    algorithms: [RS256]
    max_token_age_seconds: {MAX_AGE}
    leeway_seconds: {LEEWAY}
"#
    )
}

fn policy(jwks_a: &str, jwks_b: &str) -> Arc<Policy> {
    Arc::new(Policy::from_bytes("test.yaml", policy_yaml(jwks_a, jwks_b).as_bytes()).unwrap())
}

/// Issuer A publishes an RSA and an EC key; issuer B one RSA key (PS256 and RS256 allowed, subject in `client_id`);
/// issuer C (Cognito-shaped) publishes A's RSA key, which saves generating another.
struct Fx {
    policy: Arc<Policy>,
    fetcher: MemoryJwksFetcher,
    verifier: Arc<JwtVerifier>,
    rsa: PartnerKey,
    ec: PartnerKey,
    b: PartnerKey,
}

impl Fx {
    fn new() -> Self {
        Self::with(JwtConfig::default())
    }

    fn with(cfg: JwtConfig) -> Self {
        let rsa = PartnerKey::rsa("a-rsa-1").unwrap();
        let ec = PartnerKey::ec_p256("a-ec-1").unwrap();
        let b = PartnerKey::rsa_pss("b-rsa-1").unwrap();
        let fetcher = MemoryJwksFetcher::default();
        fetcher.set(JWKS_A, jwks([rsa.jwk(), ec.jwk()]).to_string());
        let mut bj = b.jwk();
        bj.as_object_mut().unwrap().remove("alg");
        fetcher.set(JWKS_B, jwks([bj]).to_string());
        fetcher.set(JWKS_C, rsa.jwks().to_string());
        let policy = policy(JWKS_A, JWKS_B);
        let verifier = Arc::new(JwtVerifier::new(policy.clone(), Arc::new(fetcher.clone()), cfg));
        Fx { policy, fetcher, verifier, rsa, ec, b }
    }

    async fn verify(&self, token: &str) -> Result<VerifiedJwt, JwtError> {
        self.verifier.verify(token, SystemTime::now()).await
    }

    /// Asserts the exact refusal, and that its text carries no part of the token.
    async fn refused(&self, token: &str, want: JwtError) {
        let got = self.verify(token).await;
        assert_eq!(got.as_ref().err(), Some(&want), "expected {want:?}, got {got:?}");
        assert_no_token_in(&want.to_string(), token);
    }
}

fn assert_no_token_in(text: &str, token: &str) {
    for part in token.split('.').filter(|p| p.len() >= 6) {
        assert!(!text.contains(part), "error text contains a token segment: {text}");
    }
}

fn claims_a() -> Value {
    standard_claims(ISS_A, SUB_A, AUD)
}

fn edit(mut v: Value, f: impl FnOnce(&mut Map<String, Value>)) -> Value {
    f(v.as_object_mut().unwrap());
    v
}

fn set(key: &str, val: Value) -> impl FnOnce(&mut Map<String, Value>) + '_ {
    move |m| drop(m.insert(key.to_owned(), val))
}

fn del(key: &str) -> impl FnOnce(&mut Map<String, Value>) + '_ {
    move |m| drop(m.remove(key))
}

// ---------------------------------------------------------------------------------------------------------------
// Positive

#[tokio::test]
async fn rs256_and_es256_tokens_from_a_configured_partner_verify() {
    let fx = Fx::new();
    for key in [&fx.rsa, &fx.ec] {
        // One claims value per token: building it twice could straddle a second boundary.
        let claims = claims_a();
        let token = key.token(&claims).unwrap();
        let v = fx.verify(&token).await.unwrap();
        assert_eq!((v.issuer.as_str(), v.subject.as_str()), (ISS_A, SUB_A));
        assert_eq!(v.token_sha256, <[u8; 32]>::from(Sha256::digest(token.as_bytes())));
        assert_eq!(v.expires_at, claims["exp"].as_u64().unwrap());
        let caller = fx.policy.caller_for(&IdentityKey::Jwt { issuer: v.issuer, subject: v.subject }).unwrap();
        assert_eq!(caller.id.as_str(), "partner-a");
    }
    // One fetch for both tokens: keys are cached.
    assert_eq!(fx.fetcher.fetches(), 1);
}

#[tokio::test]
async fn ps256_with_a_configured_subject_claim_verifies() {
    let fx = Fx::new();
    let claims = edit(standard_claims(ISS_B, "ignored-sub", AUD), set("client_id", json!(SUB_B)));
    let v = fx.verify(&fx.b.token(&claims).unwrap()).await.unwrap();
    assert_eq!((v.issuer.as_str(), v.subject.as_str()), (ISS_B, SUB_B));
    // B also allows RS256: the same RSA key (its JWK names no alg) signs RS256 too.
    let t = fx.b.sign_with(Algorithm::RS256, &json!({"alg": "RS256", "kid": "b-rsa-1"}), claims.to_string().as_bytes());
    assert_eq!(fx.verify(&t.unwrap()).await.unwrap().subject, SUB_B);
    // Missing the configured claim is refused even though `sub` is present.
    fx.refused(&fx.b.token(&standard_claims(ISS_B, SUB_B, AUD)).unwrap(), JwtError::MissingClaim("subject")).await;
}

#[tokio::test]
async fn audience_array_containing_ours_verifies() {
    let fx = Fx::new();
    let t = fx.rsa.token(&edit(claims_a(), set("aud", json!(["https://someone-else", AUD])))).unwrap();
    assert!(fx.verify(&t).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_http_jwks_fetch_through_http_jwks_fetcher() {
    let rsa = PartnerKey::rsa("a-rsa-1").unwrap();
    let (server, handle) = JwksServer::start(rsa.jwks()).await.unwrap();
    let fetcher = HttpJwksFetcher::new(&JwksFetcherConfig::default()).unwrap();
    let verifier = JwtVerifier::new(policy(&server.url, JWKS_B), Arc::new(fetcher), JwtConfig::default());
    for _ in 0..3 {
        let v = verifier.verify(&rsa.token(&claims_a()).unwrap(), SystemTime::now()).await.unwrap();
        assert_eq!((v.issuer.as_str(), v.subject.as_str()), (ISS_A, SUB_A));
    }
    assert_eq!(server.requests(), 1, "keys are fetched once and cached");
    handle.abort();
}

#[tokio::test]
async fn token_without_kid_verifies_only_with_exactly_one_fitting_key() {
    let fx = Fx::new();
    // A publishes one RSA and one EC key: a kid-less RS256 token has exactly one candidate.
    let t = fx.rsa.sign(&claims_a(), del("kid")).unwrap();
    assert!(fx.verify(&t).await.is_ok());
    let t = fx.ec.sign(&claims_a(), del("kid")).unwrap();
    assert!(fx.verify(&t).await.is_ok());

    // Two RSA keys: refused rather than tried in turn.
    let fx2 = Fx::new();
    let other = PartnerKey::rsa("a-rsa-2").unwrap();
    fx2.fetcher.set(JWKS_A, jwks([fx2.rsa.jwk(), other.jwk()]).to_string());
    fx2.refused(&fx2.rsa.sign(&claims_a(), del("kid")).unwrap(), JwtError::AmbiguousKey).await;
}

// ---------------------------------------------------------------------------------------------------------------
// Header attacks

#[tokio::test]
async fn alg_none_in_any_case_is_refused() {
    let fx = Fx::new();
    let payload = claims_a().to_string();
    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = json!({"alg": alg, "typ": "JWT", "kid": "a-rsa-1"});
        fx.refused(&unsigned(&header, payload.as_bytes(), b""), JwtError::AlgNone).await;
        fx.refused(&unsigned(&header, payload.as_bytes(), b"junk-signature"), JwtError::AlgNone).await;
        // Header says none, but carries a real RS256 signature: still refused.
        fx.refused(&fx.rsa.sign(&claims_a(), set("alg", json!(alg))).unwrap(), JwtError::AlgNone).await;
    }
    assert_eq!(fx.fetcher.fetches(), 0, "refused before any key lookup");
}

#[tokio::test]
async fn hs256_signed_with_the_partners_public_key_is_refused() {
    let fx = Fx::new();
    let payload = claims_a().to_string();
    let n = fx.rsa.jwk()["n"].as_str().unwrap().to_owned();
    let jwk_json = fx.rsa.jwk().to_string();
    let secrets: Vec<&[u8]> = vec![
        fx.rsa.public_key_pem().as_bytes(),
        fx.rsa.public_key_der(),
        fx.rsa.public_key_raw(),
        n.as_bytes(),
        jwk_json.as_bytes(),
    ];
    for secret in secrets {
        for kid in [Some("a-rsa-1"), None] {
            let mut header = json!({"alg": "HS256", "typ": "JWT"});
            if let Some(k) = kid {
                header["kid"] = json!(k);
            }
            let t = sign_hs256(secret, &header, payload.as_bytes()).unwrap();
            fx.refused(&t, JwtError::AlgNotAllowed).await;
        }
    }
    // HS384/HS512 too.
    for alg in ["HS384", "HS512"] {
        let t = sign_hs256(fx.rsa.public_key_der(), &json!({"alg": alg}), payload.as_bytes()).unwrap();
        fx.refused(&t, JwtError::AlgNotAllowed).await;
    }
}

#[tokio::test]
async fn algorithm_outside_the_issuers_list_is_refused() {
    let fx = Fx::new();
    let payload = claims_a().to_string();
    // A allows RS256 and ES256. PS256 and RS512 are real signatures by A's own RSA key.
    for alg in [Algorithm::PS256, Algorithm::RS512, Algorithm::RS384] {
        let name = tb_devkit::jwt::alg_name(alg);
        let t = fx.rsa.sign_with(alg, &json!({"alg": name, "kid": "a-rsa-1"}), payload.as_bytes()).unwrap();
        fx.refused(&t, JwtError::AlgNotAllowed).await;
    }
    for alg in ["ES384", "EdDSA", "rs256", "RS256 ", "XYZ", ""] {
        let t = fx.rsa.sign(&claims_a(), set("alg", json!(alg))).unwrap();
        fx.refused(&t, JwtError::AlgNotAllowed).await;
    }
    // alg that is not a string at all.
    fx.refused(&fx.rsa.sign(&claims_a(), set("alg", json!(["RS256"]))).unwrap(), JwtError::Malformed).await;
    fx.refused(&fx.rsa.sign(&claims_a(), del("alg")).unwrap(), JwtError::Malformed).await;
}

#[tokio::test]
async fn unknown_crit_is_refused() {
    let fx = Fx::new();
    for crit in [json!(["exp"]), json!(["b64"]), json!(["urn:example:unknown"]), json!([]), json!("exp")] {
        let t = fx.rsa.sign(&claims_a(), |h| {
            h.insert("crit".into(), crit.clone());
            h.insert("b64".into(), json!(false));
            h.insert("urn:example:unknown".into(), json!(1));
        });
        fx.refused(&t.unwrap(), JwtError::CritHeader).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jku_x5u_jwk_x5c_are_never_fetched_or_used() {
    let partner = PartnerKey::rsa("a-rsa-1").unwrap();
    let attacker = PartnerKey::rsa("attacker-1").unwrap();
    let (legit, legit_task) = JwksServer::start(partner.jwks()).await.unwrap();
    let (evil, evil_task) = JwksServer::start(attacker.jwks()).await.unwrap();
    let fetcher = HttpJwksFetcher::new(&JwksFetcherConfig::default()).unwrap();
    let verifier = JwtVerifier::new(policy(&legit.url, JWKS_B), Arc::new(fetcher), JwtConfig::default());

    let point_at_attacker = |h: &mut Map<String, Value>| {
        h.insert("jku".into(), json!(evil.url));
        h.insert("x5u".into(), json!(format!("{}/cert.pem", evil.base)));
        h.insert("jwk".into(), attacker.jwk());
        h.insert("x5c".into(), json!([]));
    };
    // Signed by the attacker, under the attacker's kid: not in the configured JWKS.
    let t = attacker.sign(&claims_a(), point_at_attacker).unwrap();
    assert_eq!(verifier.verify(&t, SystemTime::now()).await, Err(JwtError::UnknownKid));
    // Signed by the attacker, claiming the partner's kid: the partner's key does not verify it.
    let t = attacker.sign(&claims_a(), |h| {
        point_at_attacker(h);
        h.insert("kid".into(), json!("a-rsa-1"));
    });
    assert_eq!(verifier.verify(&t.unwrap(), SystemTime::now()).await, Err(JwtError::BadSignature));
    // Only jku / only x5u.
    for field in ["jku", "x5u"] {
        let t = attacker.sign(&claims_a(), |h| drop(h.insert(field.into(), json!(evil.url)))).unwrap();
        assert_eq!(verifier.verify(&t, SystemTime::now()).await, Err(JwtError::UnknownKid));
    }
    // The partner's own token with those headers verifies: they are ignored, not followed.
    let t = partner.sign(&claims_a(), point_at_attacker).unwrap();
    assert!(verifier.verify(&t, SystemTime::now()).await.is_ok());

    assert_eq!(evil.requests(), 0, "the jku/x5u server must receive no request");
    assert!(legit.requests() >= 1, "keys came from the configured JWKS URL");
    legit_task.abort();
    evil_task.abort();
}

// ---------------------------------------------------------------------------------------------------------------
// Signature and key attacks

#[tokio::test]
async fn bad_signature_is_refused() {
    let fx = Fx::new();
    let good = fx.rsa.token(&claims_a()).unwrap();
    let (head, sig) = good.rsplit_once('.').unwrap();
    // Flip the first signature character (keeps valid base64url).
    let mut s = sig.to_owned();
    let c = if s.starts_with('A') { "B" } else { "A" };
    s.replace_range(0..1, c);
    fx.refused(&format!("{head}.{s}"), JwtError::BadSignature).await;
    // Claims swapped under the original signature.
    let other = fx.rsa.token(&edit(claims_a(), set("sub", json!("someone-else")))).unwrap();
    let mut parts: Vec<&str> = good.split('.').collect();
    parts[1] = other.split('.').nth(1).unwrap();
    fx.refused(&parts.join("."), JwtError::BadSignature).await;
    // Another RSA key presenting the partner's kid.
    let impostor = PartnerKey::rsa("a-rsa-1").unwrap();
    fx.refused(&impostor.token(&claims_a()).unwrap(), JwtError::BadSignature).await;
    // EC: a signature shortened by a few bytes (still canonical base64url).
    let ec = fx.ec.token(&claims_a()).unwrap();
    let (ec_head, ec_sig) = ec.rsplit_once('.').unwrap();
    let mut raw = URL_SAFE_NO_PAD.decode(ec_sig).unwrap();
    raw.truncate(raw.len() - 3);
    fx.refused(&format!("{ec_head}.{}", URL_SAFE_NO_PAD.encode(raw)), JwtError::BadSignature).await;
    // Non-canonical base64url in the signature is a structural error, not a signature to try.
    // (an ES256 signature is 86 characters; 85 is a length base64 cannot have)
    fx.refused(&ec[..ec.len() - 1], JwtError::Malformed).await;
}

#[tokio::test]
async fn issuer_a_claims_signed_with_issuer_b_key_are_refused() {
    let fx = Fx::new();
    // B's key under its own kid: A's JWKS does not have it.
    fx.refused(
        &fx.b
            .sign_with(Algorithm::RS256, &json!({"alg":"RS256","kid":"b-rsa-1"}), claims_a().to_string().as_bytes())
            .unwrap(),
        JwtError::UnknownKid,
    )
    .await;
    // B's key relabelled with A's kid.
    let t =
        fx.b.sign_with(Algorithm::RS256, &json!({"alg":"RS256","kid":"a-rsa-1"}), claims_a().to_string().as_bytes());
    fx.refused(&t.unwrap(), JwtError::BadSignature).await;
    // No kid: A's single RSA key is tried and fails.
    let t = fx.b.sign_with(Algorithm::RS256, &json!({"alg":"RS256"}), claims_a().to_string().as_bytes());
    fx.refused(&t.unwrap(), JwtError::BadSignature).await;
    // And B's keys never verify for A even though B's token itself is fine.
    let b_token = fx.b.token(&edit(standard_claims(ISS_B, SUB_B, AUD), set("client_id", json!(SUB_B)))).unwrap();
    assert!(fx.verify(&b_token).await.is_ok());
}

#[tokio::test]
async fn keys_of_the_wrong_use_or_type_are_never_used() {
    let fx = Fx::new();
    let enc_rsa = PartnerKey::rsa("enc-rsa").unwrap();
    let mut enc_jwk = enc_rsa.jwk();
    enc_jwk["use"] = json!("enc");
    let ops_rsa = PartnerKey::rsa("ops-rsa").unwrap();
    let mut ops_jwk = ops_rsa.jwk();
    ops_jwk["key_ops"] = json!(["encrypt", "wrapKey"]);
    let alg512 = PartnerKey::rsa("alg-512").unwrap();
    let mut alg512_jwk = alg512.jwk();
    alg512_jwk["alg"] = json!("RS512");
    // An EC key published under a kid that an RS256 token names.
    let mut ec_as_mix = fx.ec.jwk();
    ec_as_mix["kid"] = json!("mix");
    // An HMAC key whose secret the attacker knows.
    let oct = json!({"kty": "oct", "kid": "hmac", "k": "c2VjcmV0", "alg": "HS256"});
    fx.fetcher.set(JWKS_A, jwks([enc_jwk, ops_jwk, alg512_jwk, ec_as_mix, oct]).to_string());

    fx.refused(&enc_rsa.token(&claims_a()).unwrap(), JwtError::UnusableKey).await;
    fx.refused(&ops_rsa.token(&claims_a()).unwrap(), JwtError::UnusableKey).await;
    fx.refused(&alg512.token(&claims_a()).unwrap(), JwtError::UnusableKey).await;
    fx.refused(&fx.rsa.sign(&claims_a(), set("kid", json!("mix"))).unwrap(), JwtError::UnusableKey).await;
    fx.refused(&fx.rsa.sign(&claims_a(), set("kid", json!("hmac"))).unwrap(), JwtError::UnusableKey).await;
    let hs = sign_hs256(b"secret", &json!({"alg": "HS256", "kid": "hmac"}), claims_a().to_string().as_bytes());
    fx.refused(&hs.unwrap(), JwtError::AlgNotAllowed).await;
    // Without kid, the `enc`/`key_ops`/RS512-only RSA keys do not count: no RSA key fits RS256 at all.
    fx.refused(&enc_rsa.sign(&claims_a(), del("kid")).unwrap(), JwtError::NoKey).await;
    // An ES256 token (no kid) is verified by the only fitting key, the EC one.
    assert!(fx.verify(&fx.ec.sign(&claims_a(), del("kid")).unwrap()).await.is_ok());
    // Unusable keys cause no refetch, and the kid-less miss fell inside the cooldown: one fetch in all.
    assert_eq!(fx.fetcher.fetches(), 1);
}

// ---------------------------------------------------------------------------------------------------------------
// Claim attacks

#[tokio::test]
async fn wrong_or_missing_iss_is_refused() {
    let fx = Fx::new();
    let cases = [
        (edit(claims_a(), set("iss", json!("https://evil.example"))), JwtError::UnknownIssuer),
        (edit(claims_a(), set("iss", json!(format!("{ISS_A}/")))), JwtError::UnknownIssuer),
        (edit(claims_a(), set("iss", json!(ISS_A.to_uppercase()))), JwtError::UnknownIssuer),
        (edit(claims_a(), del("iss")), JwtError::MissingClaim("iss")),
        (edit(claims_a(), set("iss", json!([ISS_A]))), JwtError::InvalidClaim("iss")),
        (edit(claims_a(), set("iss", json!(null))), JwtError::InvalidClaim("iss")),
    ];
    for (claims, want) in cases {
        fx.refused(&fx.rsa.token(&claims).unwrap(), want).await;
    }
}

#[tokio::test]
async fn wrong_or_missing_aud_is_refused() {
    let fx = Fx::new();
    let cases = [
        (edit(claims_a(), set("aud", json!("https://elsewhere.test"))), JwtError::WrongAudience),
        (edit(claims_a(), set("aud", json!(["https://elsewhere.test"]))), JwtError::WrongAudience),
        (edit(claims_a(), set("aud", json!(format!("{AUD} ")))), JwtError::WrongAudience),
        (edit(claims_a(), del("aud")), JwtError::MissingClaim("aud")),
    ];
    for (claims, want) in cases {
        fx.refused(&fx.rsa.token(&claims).unwrap(), want).await;
    }
}

#[tokio::test]
async fn aud_of_the_wrong_type_is_refused() {
    let fx = Fx::new();
    for aud in [json!(42), json!({"aud": AUD}), json!([AUD, 7]), json!(true), json!(null), json!([])] {
        fx.refused(&fx.rsa.token(&edit(claims_a(), set("aud", aud))).unwrap(), JwtError::InvalidClaim("aud")).await;
    }
}

/// A Cognito client-credentials access token: `client_id` names the app client, there is no `aud` and no `nbf`.
fn claims_c() -> Value {
    let n = now();
    json!({
        "sub": CLIENT_C,
        "token_use": "access",
        "scope": "api/read",
        "auth_time": n,
        "iss": ISS_C,
        "exp": n + 3600,
        "iat": n,
        "version": 2,
        "jti": "8a7c44f3-6d2e-4a4e-9d8a-3f1b0b7e2c11",
        "client_id": CLIENT_C,
    })
}

#[tokio::test]
async fn an_issuer_whose_audience_claim_is_client_id_needs_no_aud() {
    let fx = Fx::new();
    let v = fx.verify(&fx.rsa.token(&claims_c()).unwrap()).await.unwrap();
    assert_eq!((v.issuer.as_str(), v.subject.as_str()), (ISS_C, CLIENT_C));
    // An aud that names us as well is fine.
    assert!(fx.verify(&fx.rsa.token(&edit(claims_c(), set("aud", json!([CLIENT_C])))).unwrap()).await.is_ok());
}

#[tokio::test]
async fn a_configured_audience_claim_that_is_missing_wrong_or_not_a_string_is_refused() {
    let fx = Fx::new();
    let cases = [
        (edit(claims_c(), del("client_id")), JwtError::MissingClaim("audience")),
        (edit(claims_c(), set("client_id", json!("another-app-client"))), JwtError::WrongAudience),
        (edit(claims_c(), set("client_id", json!(format!("{CLIENT_C} ")))), JwtError::WrongAudience),
        (edit(claims_c(), set("client_id", json!([CLIENT_C]))), JwtError::InvalidClaim("audience")),
        (edit(claims_c(), set("client_id", json!(7))), JwtError::InvalidClaim("audience")),
        // The RFC 7519 rule for a present aud still holds: it must name us.
        (edit(claims_c(), set("aud", json!("https://someone-else.example"))), JwtError::WrongAudience),
        (edit(claims_c(), set("aud", json!(["https://someone-else.example"]))), JwtError::WrongAudience),
        (edit(claims_c(), set("aud", json!(5))), JwtError::InvalidClaim("aud")),
    ];
    for (claims, want) in cases {
        fx.refused(&fx.rsa.token(&claims).unwrap(), want).await;
    }
    // The audience claim is per issuer: A's tokens still need aud, whatever client_id says.
    let a = edit(edit(claims_a(), del("aud")), set("client_id", json!(AUD)));
    fx.refused(&fx.rsa.token(&a).unwrap(), JwtError::MissingClaim("aud")).await;
}

#[tokio::test]
async fn required_claims_are_enforced_per_issuer() {
    let fx = Fx::new();
    for claim in ["jti", "token_use"] {
        let want = JwtError::MissingRequiredClaim(claim.into());
        fx.refused(&fx.rsa.token(&edit(claims_c(), del(claim))).unwrap(), want.clone()).await;
        fx.refused(&fx.rsa.token(&edit(claims_c(), set(claim, Value::Null))).unwrap(), want).await;
    }
    // Issuer A requires neither.
    let a = edit(edit(claims_a(), del("jti")), del("token_use"));
    assert!(fx.verify(&fx.rsa.token(&a).unwrap()).await.is_ok());
}

#[tokio::test]
async fn missing_time_claims_are_refused() {
    let fx = Fx::new();
    for claim in ["exp", "iat"] {
        fx.refused(&fx.rsa.token(&edit(claims_a(), del(claim))).unwrap(), JwtError::MissingClaim(claim)).await;
    }
}

/// `nbf` is optional (RFC 7519): client-credentials access tokens from Cognito, Okta, Auth0 and Keycloak carry
/// none, and a partner using one of them is accepted; when present it is still checked (below).
#[tokio::test]
async fn a_token_without_nbf_is_accepted() {
    let fx = Fx::new();
    let v = fx.verify(&fx.rsa.token(&edit(claims_a(), del("nbf"))).unwrap()).await.unwrap();
    assert_eq!(v.subject, SUB_A);
}

#[tokio::test]
async fn expired_token_is_refused() {
    let fx = Fx::new();
    let n = now();
    let claims = edit(edit(claims_a(), set("exp", json!(n - LEEWAY - 2))), set("iat", json!(n - 60)));
    fx.refused(&fx.rsa.token(&claims).unwrap(), JwtError::Expired).await;
}

#[tokio::test]
async fn nbf_in_the_future_is_refused() {
    let fx = Fx::new();
    let claims = edit(claims_a(), set("nbf", json!(now() + LEEWAY + 60)));
    fx.refused(&fx.rsa.token(&claims).unwrap(), JwtError::NotYetValid).await;
}

#[tokio::test]
async fn iat_in_the_future_is_refused() {
    let fx = Fx::new();
    let claims = edit(claims_a(), set("iat", json!(now() + LEEWAY + 60)));
    fx.refused(&fx.rsa.token(&claims).unwrap(), JwtError::IssuedInFuture).await;
}

#[tokio::test]
async fn time_claims_as_strings_are_refused() {
    let fx = Fx::new();
    for claim in ["exp", "nbf", "iat"] {
        let v = claims_a()[claim].as_u64().unwrap().to_string();
        let t = fx.rsa.token(&edit(claims_a(), set(claim, json!(v)))).unwrap();
        fx.refused(&t, JwtError::InvalidClaim(claim)).await;
    }
    let t = fx.rsa.token(&edit(claims_a(), set("exp", json!(-5)))).unwrap();
    fx.refused(&t, JwtError::InvalidClaim("exp")).await;
}

#[tokio::test]
async fn token_older_than_the_maximum_age_is_refused() {
    let fx = Fx::new();
    let n = now();
    // Still unexpired (exp in the future) but issued longer ago than the issuer allows.
    let claims = edit(edit(claims_a(), set("iat", json!(n - MAX_AGE - 60))), set("nbf", json!(n - MAX_AGE - 60)));
    fx.refused(&fx.rsa.token(&claims).unwrap(), JwtError::TooOld).await;
}

// ---------------------------------------------------------------------------------------------------------------
// Size and structure

#[tokio::test]
async fn token_over_the_size_cap_is_refused_before_decoding() {
    let fx = Fx::new();
    let cap = JwtConfig::default().max_token_bytes;
    let padded = |n: usize| fx.rsa.token(&edit(claims_a(), set("pad", json!("x".repeat(n))))).unwrap();
    let big = padded(cap);
    assert!(big.len() > cap);
    fx.refused(&big, JwtError::TooLarge(cap)).await;
    fx.refused(&"a".repeat(cap + 1), JwtError::TooLarge(cap)).await;
    fx.refused(&format!("{}.{}.{}", "e".repeat(cap), "e", "e"), JwtError::TooLarge(cap)).await;
    assert_eq!(fx.fetcher.fetches(), 0, "nothing was decoded or looked up");
    // A valid token just under the cap still verifies.
    let base = padded(0).len();
    let fits = padded((cap - base) * 3 / 4 - 8);
    assert!(fits.len() <= cap && fits.len() > cap - 64, "{}", fits.len());
    assert!(fx.verify(&fits).await.is_ok());
}

/// RFC 7515 §4 / RFC 7519 §4 let a recipient reject or take the last of duplicate member names; two readers taking
/// different ones would disagree about the token. Every duplicate is refused, even with a valid signature over it.
#[tokio::test]
async fn duplicate_members_in_header_or_payload_are_malformed() {
    let fx = Fx::new();
    let n = now();
    let header = r#"{"alg":"RS256","typ":"JWT","kid":"a-rsa-1"}"#;
    let payload = |extra: &str| {
        format!(r#"{{"iss":"{ISS_A}","sub":"{SUB_A}","aud":"{AUD}","iat":{n},"exp":{exp}{extra}}}"#, exp = n + 300)
    };
    let sign = |h: &str, p: &str| fx.rsa.sign_raw(Algorithm::RS256, h, p).unwrap();
    // The fixture itself verifies.
    assert!(fx.verify(&sign(header, &payload(""))).await.is_ok());

    let headers = [
        r#"{"alg":"RS256","typ":"JWT","kid":"a-rsa-1","alg":"RS256"}"#,
        r#"{"alg":"none","typ":"JWT","kid":"a-rsa-1","alg":"RS256"}"#,
        r#"{"alg":"RS256","typ":"JWT","kid":"a-rsa-1","kid":"a-ec-1"}"#,
        r#"{"alg":"RS256","typ":"JWT","kid":"a-rsa-1","\u006bid":"a-rsa-1"}"#,
    ];
    for h in headers {
        fx.refused(&sign(h, &payload("")), JwtError::Malformed).await;
    }
    let payloads = [
        payload(&format!(r#","iss":"{ISS_B}""#)),
        payload(&format!(r#","iss":"{ISS_A}""#)),
        payload(&format!(r#","exp":{}"#, n + 86_400)),
        payload(r#","aud":"https://other-audience.test""#),
        payload(r#","sub":"someone-else""#),
        payload(&format!(r#","\u0073ub":"{SUB_A}""#)),
        payload(r#","act":{"sub":"x","sub":"y"}"#),
    ];
    for p in &payloads {
        fx.refused(&sign(header, p), JwtError::Malformed).await;
    }
}

#[tokio::test]
async fn malformed_tokens_are_refused() {
    let fx = Fx::new();
    let good = fx.rsa.token(&claims_a()).unwrap();
    let cases = [
        String::new(),
        "Bearer x.y.z".into(),
        good.replacen('.', "", 1),
        format!("{good}.extra"),
        format!("{good}="),
        good.replace('.', ". "),
        format!("{}.e30.A", good.split('.').next().unwrap()),
        unsigned(&json!({"alg": "RS256"}), b"not json", b"sig"),
        unsigned(&json!({"alg": "RS256"}), b"[1,2]", b"sig"),
        unsigned(&json!({"alg": "RS256", "kid": 5}), claims_a().to_string().as_bytes(), b"sig"),
    ];
    for t in cases {
        fx.refused(&t, JwtError::Malformed).await;
    }
}

// ---------------------------------------------------------------------------------------------------------------
// JWKS cache behaviour

fn random_kid_token(key: &PartnerKey, i: u32) -> String {
    let kid = hex_of(&Sha256::digest(i.to_be_bytes())[..12]);
    // The signature need not be valid: the kid alone is what an attacker varies.
    let _ = key;
    unsigned(&json!({"alg": "RS256", "kid": kid}), claims_a().to_string().as_bytes(), &[7u8; 256])
}

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

async fn flood(verifier: &Arc<JwtVerifier>, tokens: Vec<String>) {
    let mut set = tokio::task::JoinSet::new();
    for t in tokens {
        let v = verifier.clone();
        set.spawn(async move { v.verify(&t, SystemTime::now()).await });
    }
    while let Some(r) = set.join_next().await {
        assert_eq!(r.unwrap(), Err(JwtError::UnknownKid));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_random_kids_cause_at_most_one_fetch_per_cooldown() {
    // Cold cache, default 60 s cooldown: 1,000 concurrent random kids share a single fetch.
    let fx = Fx::new();
    let tokens: Vec<String> = (0..1000).map(|i| random_kid_token(&fx.rsa, i)).collect();
    flood(&fx.verifier, tokens).await;
    assert_eq!(fx.fetcher.fetches(), 1);
    // The real key still verifies, from the cache.
    assert!(fx.verify(&fx.rsa.token(&claims_a()).unwrap()).await.is_ok());
    assert_eq!(fx.fetcher.fetches(), 1);

    // Short cooldown: exactly one more fetch per elapsed cooldown, however many tokens.
    // Long enough that a whole flood of 1,000 verifications fits inside it even on a loaded 2-core machine.
    let cooldown = Duration::from_millis(4000);
    let fx = Fx::with(JwtConfig { unknown_kid_cooldown: cooldown, ..JwtConfig::default() });
    assert!(fx.verify(&fx.rsa.token(&claims_a()).unwrap()).await.is_ok());
    assert_eq!(fx.fetcher.fetches(), 1);
    tokio::time::sleep(cooldown + Duration::from_millis(50)).await;
    flood(&fx.verifier, (1000..2000).map(|i| random_kid_token(&fx.rsa, i)).collect()).await;
    assert_eq!(fx.fetcher.fetches(), 2);
    flood(&fx.verifier, (2000..3000).map(|i| random_kid_token(&fx.rsa, i)).collect()).await;
    assert_eq!(fx.fetcher.fetches(), 2, "still inside the cooldown");
    tokio::time::sleep(cooldown + Duration::from_millis(50)).await;
    flood(&fx.verifier, (3000..4000).map(|i| random_kid_token(&fx.rsa, i)).collect()).await;
    assert_eq!(fx.fetcher.fetches(), 3);
}

#[tokio::test]
async fn a_new_kid_is_picked_up_by_one_refetch() {
    let cooldown = Duration::from_millis(200);
    let fx = Fx::with(JwtConfig { unknown_kid_cooldown: cooldown, ..JwtConfig::default() });
    assert!(fx.verify(&fx.rsa.token(&claims_a()).unwrap()).await.is_ok());
    // The partner rotates in a new key.
    let next = PartnerKey::rsa("a-rsa-2").unwrap();
    fx.fetcher.set(JWKS_A, jwks([fx.rsa.jwk(), next.jwk()]).to_string());
    tokio::time::sleep(cooldown).await;
    assert!(fx.verify(&next.token(&claims_a()).unwrap()).await.is_ok());
    assert_eq!(fx.fetcher.fetches(), 2);
}

#[tokio::test]
async fn jwks_endpoint_down_known_keys_still_verify() {
    let cfg = JwtConfig {
        unknown_kid_cooldown: Duration::from_millis(50),
        jwks_max_age: Duration::from_millis(50),
        ..JwtConfig::default()
    };
    let fx = Fx::with(cfg);
    let good = fx.rsa.token(&claims_a()).unwrap();
    assert!(fx.verify(&good).await.is_ok());
    fx.fetcher.set_down(true);
    tokio::time::sleep(Duration::from_millis(120)).await;
    // Keys are past their max age and the refresh fails: the stale keys keep verifying.
    assert!(fx.verify(&good).await.is_ok());
    assert!(fx.verify(&fx.ec.token(&claims_a()).unwrap()).await.is_ok());
    assert!(fx.fetcher.fetches() >= 2, "a refresh was attempted");
    // An unknown kid cannot be resolved while down, and is refused.
    fx.refused(&random_kid_token(&fx.rsa, 1), JwtError::UnknownKid).await;

    // A verifier that never saw the keys has nothing to fall back on.
    let cold = Fx::new();
    cold.fetcher.set_down(true);
    cold.refused(&cold.rsa.token(&claims_a()).unwrap(), JwtError::KeysUnavailable).await;
    cold.refused(&cold.rsa.token(&claims_a()).unwrap(), JwtError::KeysUnavailable).await;
    assert_eq!(cold.fetcher.fetches(), 1, "the failed fetch is not retried inside the cooldown");
}

/// Riding out a JWKS outage has a bound: past `jwks_max_age + jwks_max_stale` with every refresh failing, the
/// issuer's tokens are refused, so an endpoint that stays unreachable cannot keep a withdrawn key valid for ever.
#[tokio::test]
async fn keys_past_the_stale_window_are_refused_until_a_fetch_succeeds() {
    let cfg = JwtConfig {
        unknown_kid_cooldown: Duration::from_millis(100),
        jwks_max_age: Duration::from_millis(200),
        jwks_max_stale: Duration::from_millis(1000),
        ..JwtConfig::default()
    };
    let fx = Fx::with(cfg);
    let good = fx.rsa.token(&claims_a()).unwrap();
    assert!(fx.verify(&good).await.is_ok());
    fx.fetcher.set_down(true);
    // Past the maximum age, inside the stale window: the refresh fails and the known keys still verify.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(fx.verify(&good).await.is_ok());
    let attempts = fx.fetcher.fetches();
    assert!(attempts >= 2, "a refresh was attempted");
    // Past the window: refused, and the keys are not used again while the endpoint stays down.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    fx.refused(&good, JwtError::KeysUnavailable).await;
    fx.refused(&fx.ec.token(&claims_a()).unwrap(), JwtError::KeysUnavailable).await;
    // A fetch that succeeds again (after the cooldown) restores the issuer.
    fx.fetcher.set_down(false);
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(fx.verify(&good).await.is_ok());
}

#[tokio::test]
async fn known_keys_are_refreshed_after_max_age_and_withdrawn_keys_stop_verifying() {
    // The refreshed keys must still be fresh for the second verification: a max age no stall between two
    // statements reaches.
    let cfg = JwtConfig { jwks_max_age: Duration::from_millis(1000), ..JwtConfig::default() };
    let fx = Fx::with(cfg);
    assert!(fx.verify(&fx.rsa.token(&claims_a()).unwrap()).await.is_ok());
    // The partner withdraws its RSA key (e.g. after a compromise) and publishes only the EC key.
    fx.fetcher.set(JWKS_A, fx.ec.jwks().to_string());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    fx.refused(&fx.rsa.token(&claims_a()).unwrap(), JwtError::UnknownKid).await;
    assert!(fx.verify(&fx.ec.token(&claims_a()).unwrap()).await.is_ok());
    assert_eq!(fx.fetcher.fetches(), 2);
}

#[tokio::test]
async fn a_broken_jwks_document_does_not_replace_good_keys() {
    let cfg = JwtConfig { jwks_max_age: Duration::from_millis(50), ..JwtConfig::default() };
    let fx = Fx::with(cfg);
    let good = fx.rsa.token(&claims_a()).unwrap();
    assert!(fx.verify(&good).await.is_ok());
    fx.fetcher.set(JWKS_A, "<html>maintenance</html>");
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert!(fx.verify(&good).await.is_ok());
    assert_eq!(fx.fetcher.fetches(), 2);
}

// ---------------------------------------------------------------------------------------------------------------
// Never panics

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_strings_never_panic_or_verify(s in "\\PC{0,600}") {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let fx = FX.with(|f| f.clone());
        prop_assert!(rt.block_on(fx.verify(&s)).is_err());
    }

    #[test]
    fn mutated_valid_tokens_never_panic_or_verify(
        pos in any::<prop::sample::Index>(),
        op in 0u8..4,
        byte in prop::sample::select(b"ABCxyz019-_.=+/ \x00".to_vec()),
        len in 1usize..40,
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let fx = FX.with(|f| f.clone());
        let good = TOKEN.with(|t| t.clone());
        let mut b = good.clone().into_bytes();
        let i = pos.index(b.len());
        match op {
            0 => b[i] = byte,
            1 => b.insert(i, byte),
            2 => { b.drain(i..(i + len).min(b.len())); }
            _ => b.truncate(i),
        }
        let Ok(mutated) = String::from_utf8(b) else { return Ok(()); };
        let got = rt.block_on(fx.verify(&mutated));
        if mutated == good {
            prop_assert!(got.is_ok());
        } else {
            prop_assert!(got.is_err(), "mutated token verified: op {} at {}", op, i);
        }
    }
}

/// A verifier warmed with A's keys (in memory), shared by the proptest cases of one thread.
#[derive(Clone)]
struct Shared(Arc<JwtVerifier>);

impl Shared {
    async fn verify(&self, t: &str) -> Result<VerifiedJwt, JwtError> {
        self.0.verify(t, SystemTime::now()).await
    }
}

thread_local! {
    static KEY: PartnerKey = PartnerKey::rsa("a-rsa-1").unwrap();
    static FX: Shared = {
        let fetcher = MemoryJwksFetcher::default();
        fetcher.set(JWKS_A, KEY.with(|k| k.jwks().to_string()));
        Shared(Arc::new(JwtVerifier::new(policy(JWKS_A, JWKS_B), Arc::new(fetcher), JwtConfig::default())))
    };
    static TOKEN: String = KEY.with(|k| k.token(&edit(claims_a(), set("exp", json!(now() + 3600)))).unwrap());
}

/// The verifier's `Debug` (it ends up in panics and `{:?}` logs) names its issuers and settings and holds no key
/// material, even once keys are loaded.
#[tokio::test]
async fn the_verifiers_debug_names_issuers_and_no_keys() {
    let fx = Fx::new();
    fx.verify(&fx.rsa.sign(&claims_a(), |_| {}).unwrap()).await.unwrap();
    let dbg = format!("{:?}", fx.verifier);
    assert!(dbg.starts_with("JwtVerifier") && dbg.contains(ISS_A) && dbg.contains("max_token_bytes"), "{dbg}");
    let n = fx.rsa.jwk()["n"].as_str().unwrap().to_owned();
    assert!(!dbg.contains(&n[..32]), "{dbg}");
}

/// The size cap is inclusive: a token of exactly `max_token_bytes` is verified, one byte longer is refused unread.
#[tokio::test]
async fn the_size_cap_admits_a_token_of_exactly_the_limit() {
    let fx = Fx::new();
    let token = fx.rsa.sign(&claims_a(), |_| {}).unwrap();
    let capped = |max_token_bytes: usize| {
        let cfg = JwtConfig { max_token_bytes, ..JwtConfig::default() };
        JwtVerifier::new(fx.policy.clone(), Arc::new(fx.fetcher.clone()), cfg)
    };
    capped(token.len()).verify(&token, SystemTime::now()).await.expect("a token of exactly the limit");
    let refused = capped(token.len() - 1).verify(&token, SystemTime::now()).await;
    assert_eq!(refused.err(), Some(JwtError::TooLarge(token.len() - 1)));
}
