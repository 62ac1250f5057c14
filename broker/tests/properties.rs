//! Property tests of the broker's handler, built by `tb_broker::build` with in-memory quota and credential stores and
//! the Cognito stand-in over loopback HTTP (as the acceptance tests build it): no proxy event that can reach the
//! function makes it panic, and every answer is one the error table of docs/design.md documents, with an RFC 6749
//! §5.2 error body (or a §5.1 token body), `Cache-Control: no-store` and `Pragma: no-cache`. A 200 comes only for a
//! well-formed request of a registered, enabled caller, with exactly the scopes it may have.
//!
//! Each target compares the handler with a model of the documented rules (the error table and the request flow of
//! docs/architecture.md: context, its MAC, caller, method, content type, size, base64, form, client_id, scopes).
//! Generated contexts are signed as the authorizer signs them (the devkit's test key, the event's API id and stage),
//! or carry no MAC, or a MAC broken one way or another ([`MacPlan`]); the model accepts exactly the MAC the
//! authorizer's `sign` would have written for the context, the event's API and stage and the MAC's stated expiry. Where the
//! documents leave an input's class open (a malformed media-type parameter, two Content-Type values, an oversized
//! body that is also not base64), the model accepts each of the documented answers that could apply.
//!
//! Cases per target: `TB_PROPTEST_CASES` (default [`DEFAULT_CASES`]); see TESTING.md, "Property tests".

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use aws_lambda_events::encodings::Body;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use lambda_runtime::{Context, LambdaEvent};
use proptest::prelude::*;
use proptest::sample::Index;
use secrecy::SecretString;
use serde_json::{json, Map, Value};
use tb_broker::{build, handle, App, ClientCredentials, Config, Deps, MemoryCredentialSource, MemoryQuotaStore};
use tb_devkit::cognito::{CognitoStandin, StandinClient, StandinConfig};
use tb_shared::clock::Clock;
use tb_shared::context::{
    sign, ApiBinding, AuthMethod, CallerContext, KeySet, KEY_MAC, KEY_MAC_EXPIRES, KEY_MAC_KEY_ID,
};
use tb_shared::env::Env;
use tb_shared::ids::CallerId;
use tb_shared::telemetry::MetricsSink;

/// Cases per target when `TB_PROPTEST_CASES` is not set: well under a minute for the whole binary on two cores
/// (TESTING.md, "Property tests", has the measured figures).
const DEFAULT_CASES: u32 = 3000;

const FORM: &str = "application/x-www-form-urlencoded";
/// Largest body, after base64 decoding (docs/design.md: 8 KiB).
const MAX_BODY: usize = 8 * 1024;
/// Longest base64 text that can decode to at most [`MAX_BODY`] bytes (with a little room for line ends).
const MAX_BASE64: usize = MAX_BODY.div_ceil(3) * 4 + 4;
/// Most scopes one request may name.
const MAX_SCOPES: usize = 50;
/// The request id the Lambda runtime gives when API Gateway's is missing or unusable.
const LAMBDA_REQUEST_ID: &str = "lambda-request-id";
/// An allowed scope made of the characters a form must percent-encode.
const ODD_SCOPE: &str = "edge/a+b%c&d=e!";

fn cases() -> u32 {
    std::env::var("TB_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(DEFAULT_CASES)
}

fn config() -> ProptestConfig {
    ProptestConfig { cases: cases(), max_shrink_iters: 2048, ..ProptestConfig::default() }
}

// ---------------------------------------------------------------------------------------------------------------
// The world.

/// A registered caller as the model knows it.
struct Caller {
    id: &'static str,
    enabled: bool,
    app: &'static str,
    allowed: &'static [&'static str],
    defaults: &'static [&'static str],
    max_lifetime: u64,
}

const CALLERS: [Caller; 5] = [
    Caller {
        id: "svc-a",
        enabled: true,
        app: "app-a",
        allowed: &["api/read", "api/write"],
        defaults: &["api/read"],
        max_lifetime: 3600,
    },
    Caller {
        id: "svc-b",
        enabled: true,
        app: "app-b",
        allowed: &["api/admin", ODD_SCOPE],
        defaults: &[],
        max_lifetime: 3600,
    },
    Caller {
        id: "svc-reuse",
        enabled: true,
        app: "app-reuse",
        allowed: &["api/read"],
        defaults: &["api/read"],
        max_lifetime: 3600,
    },
    Caller {
        id: "svc.dots_9-x",
        enabled: true,
        app: "app-dots",
        allowed: &["api/read"],
        defaults: &["api/read"],
        max_lifetime: 3600,
    },
    Caller {
        id: "svc-off",
        enabled: false,
        app: "app-off",
        allowed: &["api/read"],
        defaults: &["api/read"],
        max_lifetime: 3600,
    },
];

fn policy_yaml() -> String {
    let mut doc = String::from("version: 1\ncallers:\n");
    for c in &CALLERS {
        let list = |v: &[&str]| v.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(", ");
        doc += &format!(
            "  - id: {id}\n    enabled: {enabled}\n    identities: [{{ type: san_uri, value: \"spiffe://test/{id}\" }}]\n    cognito_client: {app}\n    allowed_scopes: [{allowed}]\n    default_scopes: [{defaults}]\n    quotas: unlimited\n    max_token_lifetime_seconds: {max}\n    token_reuse: {reuse}\n",
            id = c.id,
            enabled = c.enabled,
            app = c.app,
            allowed = list(c.allowed),
            defaults = list(c.defaults),
            max = c.max_lifetime,
            reuse = c.id == "svc-reuse",
        );
    }
    doc
}

struct World {
    rt: tokio::runtime::Runtime,
    app: App,
    standin: CognitoStandin,
    _policy_file: tempfile::NamedTempFile,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(World::new)
}

impl World {
    fn new() -> World {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let policy_file = tb_devkit::fixtures::write_policy(&policy_yaml());
        let (app, standin) = rt.block_on(async {
            let clients: Vec<StandinClient> = CALLERS
                .iter()
                .map(|c| StandinClient::with_random_secret(format!("{}-client", c.app), c.allowed))
                .collect();
            let standin = CognitoStandin::start(StandinConfig::new(clients.clone())).await.unwrap();
            let store = Arc::new(MemoryCredentialSource::new());
            for (c, sc) in CALLERS.iter().zip(&clients) {
                store.insert(
                    c.app,
                    ClientCredentials::token_endpoint(
                        sc.client_id.clone(),
                        SecretString::from(sc.client_secret.clone()),
                        standin.token_url().parse().unwrap(),
                    ),
                );
            }
            // Generous upstream budgets: a slow shared machine must not turn a grant into a 503.
            let cfg = Config::read(&Env::from_pairs([
                ("POLICY_FILE", policy_file.path().to_str().unwrap()),
                ("QUOTA_TABLE", "unused-in-memory"),
                ("SSM_PREFIX", "/unused/in-memory"),
                ("UPSTREAM_TIMEOUT_MS", "30000"),
                ("UPSTREAM_CONNECT_TIMEOUT_MS", "10000"),
                ("BREAKER_FAILURE_THRESHOLD", "1000"),
            ]))
            .unwrap();
            let deps = Deps {
                quotas: Arc::new(MemoryQuotaStore::new()),
                credentials: store,
                metrics: MetricsSink::to_writer("TokenBroker", std::io::sink()),
                clock: Clock::system(),
                context_keys: tb_devkit::fixtures::context_keys(),
            };
            (build(&cfg, deps).await.unwrap(), standin)
        });
        World { rt, app, standin, _policy_file: policy_file }
    }

    fn run(&self, req: ApiGatewayProxyRequest) -> ApiGatewayProxyResponse {
        let mut ctx = Context::default();
        ctx.request_id = LAMBDA_REQUEST_ID.into();
        let deadline = SystemTime::now() + Duration::from_secs(60);
        ctx.deadline = deadline.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_millis() as u64;
        self.rt.block_on(handle(&self.app, LambdaEvent::new(req, ctx))).expect("the handler never returns Err")
    }
}

fn caller(id: &str) -> Option<&'static Caller> {
    CALLERS.iter().find(|c| c.id == id)
}

// ---------------------------------------------------------------------------------------------------------------
// The model.

#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    /// Status and RFC 6749 error code.
    Error(u16, &'static str),
    /// 200 for this caller with exactly these scopes.
    Grant { caller: &'static str, scopes: BTreeSet<String> },
}

const SERVER_ERROR: Answer = Answer::Error(500, "server_error");
const UNAUTHORIZED_CLIENT: Answer = Answer::Error(403, "unauthorized_client");
const NOT_POST: Answer = Answer::Error(405, "invalid_request");
const MEDIA_TYPE: Answer = Answer::Error(415, "invalid_request");
const TOO_LARGE: Answer = Answer::Error(413, "invalid_request");
const INVALID_REQUEST: Answer = Answer::Error(400, "invalid_request");
const GRANT_TYPE: Answer = Answer::Error(400, "unsupported_grant_type");
const INVALID_SCOPE: Answer = Answer::Error(400, "invalid_scope");
const INVALID_CLIENT: Answer = Answer::Error(401, "invalid_client");

/// A context value as the contract reads it: strings, numbers and booleans as text; null as absent.
fn scalar(m: &HashMap<String, Value>, key: &str) -> Option<String> {
    match m.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The caller-context contract (docs/design.md): the caller id, `mtls` or `jwt`, a fingerprint and a policy version
/// of 1 to 128 visible ASCII characters.
fn model_context(m: &HashMap<String, Value>) -> Option<String> {
    let id = scalar(m, "callerId")?;
    let id_ok = (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    let method_ok = matches!(scalar(m, "authMethod")?.as_str(), "mtls" | "jwt");
    let visible =
        |k: &str| scalar(m, k).is_some_and(|v| (1..=128).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_graphic()));
    (id_ok && method_ok && visible("credentialFingerprint") && visible("policyVersion")).then_some(id)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Media {
    Accept,
    Refuse,
    /// Malformed beyond what the documents decide: 415, or served as a form.
    Either,
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// The media type (RFC 9110 §8.3.1, `type "/" subtype *( OWS ";" OWS [ parameter ] )`): form-urlencoded, with a
/// charset of UTF-8 or US-ASCII when one is given.
fn model_media_type(value: &[u8]) -> Media {
    let Ok(text) = std::str::from_utf8(value) else { return Media::Refuse };
    let mut parts = text.split(';');
    let essence = parts.next().unwrap_or_default().trim_matches([' ', '\t']);
    if !essence.eq_ignore_ascii_case(FORM) {
        return Media::Refuse;
    }
    if !text.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b)) {
        return Media::Either;
    }
    let mut verdict = Media::Accept;
    for p in parts {
        let p = p.trim_matches([' ', '\t']);
        if p.is_empty() {
            // RFC 9110 allows an empty parameter (`form;`, `form; charset=utf-8;`): it says nothing.
            continue;
        }
        let Some((name, value)) = p.split_once('=') else {
            verdict = Media::Either;
            continue;
        };
        let unquoted = value.strip_prefix('"').and_then(|v| v.strip_suffix('"'));
        if !is_token(name) || !(is_token(value) || unquoted.is_some_and(|v| !v.contains(['"', '\\']))) {
            verdict = Media::Either;
            continue;
        }
        if name.eq_ignore_ascii_case("charset") {
            let cs = unquoted.unwrap_or(value);
            if !(cs.eq_ignore_ascii_case("utf-8") || cs.eq_ignore_ascii_case("us-ascii")) {
                return Media::Refuse;
            }
        }
    }
    verdict
}

/// What a form component decodes to: `+` a space, `%XX` a byte, the rest itself; UTF-8 required.
fn form_component(s: &str) -> Option<String> {
    let mut out = Vec::new();
    let mut rest = s.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        rest = tail;
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(rest.get(..2)?).ok()?;
                if !hex.bytes().all(|h| h.is_ascii_hexdigit()) {
                    return None;
                }
                out.push(u8::from_str_radix(hex, 16).ok()?);
                rest = &rest[2..];
            }
            _ => out.push(b),
        }
    }
    String::from_utf8(out).ok()
}

/// RFC 6749 §3.2 and the error table: a strict form, each parameter once, `grant_type=client_credentials`, no
/// client credentials in the body. The parameters the broker reads, or the refusal.
fn model_form(body: &[u8]) -> Result<(Option<String>, Option<String>), Answer> {
    let text = std::str::from_utf8(body).map_err(|_| INVALID_REQUEST)?;
    let mut params: HashMap<String, String> = HashMap::new();
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').ok_or(INVALID_REQUEST)?;
        let (k, v) = (form_component(k).ok_or(INVALID_REQUEST)?, form_component(v).ok_or(INVALID_REQUEST)?);
        if k.is_empty() || params.insert(k.clone(), v).is_some() {
            return Err(INVALID_REQUEST);
        }
        if ["client_secret", "client_assertion", "client_assertion_type"].contains(&k.as_str()) {
            return Err(INVALID_REQUEST);
        }
    }
    let get = |k: &str| params.get(k).filter(|v| !v.is_empty()).cloned();
    match get("grant_type").as_deref() {
        None => Err(INVALID_REQUEST),
        Some("client_credentials") => Ok((get("scope"), get("client_id"))),
        Some(_) => Err(GRANT_TYPE),
    }
}

/// The context the authorizer would have signed, from the model's reading of the contract.
fn model_caller_context(m: &HashMap<String, Value>, id: &str) -> Option<CallerContext> {
    Some(CallerContext {
        caller_id: CallerId::try_from(id).ok()?,
        auth_method: if scalar(m, "authMethod")? == "jwt" { AuthMethod::Jwt } else { AuthMethod::Mtls },
        credential_fingerprint: scalar(m, "credentialFingerprint")?,
        policy_version: scalar(m, "policyVersion")?,
    })
}

/// The MAC rule: the context carries the test key's id, an expiry that has not passed (and is no further ahead than
/// the longest authorizer cache TTL allows), and exactly the MAC the authorizer's `sign` writes for this context, the
/// event's `apiId` and `stage` and that expiry.
fn model_mac(req: &ApiGatewayProxyRequest, id: &str) -> bool {
    let m = &req.request_context.authorizer.fields;
    let (Some(tag), Some(key_id), Some(expires)) =
        (scalar(m, KEY_MAC), scalar(m, KEY_MAC_KEY_ID), scalar(m, KEY_MAC_EXPIRES))
    else {
        return false;
    };
    let Ok(expires) = expires.parse::<u64>() else { return false };
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
    if key_id != tb_devkit::fixtures::CONTEXT_KEY_ID || expires < now || expires > now + 3600 + 60 {
        return false;
    }
    let Some(ctx) = model_caller_context(m, id) else { return false };
    let api = ApiBinding {
        api_id: req.request_context.apiid.clone().unwrap_or_default(),
        stage: req.request_context.stage.clone().unwrap_or_default(),
    };
    let ttl = Duration::from_secs(MAC_TTL);
    let signed_at = SystemTime::UNIX_EPOCH + Duration::from_secs(expires) - ttl;
    let [(_, expected), _, _] = sign(&ctx, &api, test_keys(), signed_at, ttl);
    tag == expected
}

/// Every answer the documents allow for this event.
fn model(req: &ApiGatewayProxyRequest) -> Vec<Answer> {
    let Some(id) = model_context(&req.request_context.authorizer.fields) else { return vec![SERVER_ERROR] };
    if !model_mac(req, &id) {
        // A context the authorizer did not sign for this API and stage: refused before anything else is looked at.
        return vec![SERVER_ERROR];
    }
    let Some(caller) = caller(&id).filter(|c| c.enabled) else { return vec![UNAUTHORIZED_CLIENT] };
    if req.http_method != http::Method::POST {
        return vec![NOT_POST];
    }
    let types: Vec<_> = req.headers.get_all("content-type").iter().collect();
    let media = match types.as_slice() {
        [one] => model_media_type(one.as_bytes()),
        _ => Media::Refuse,
    };
    // Two Content-Type values: `headers` keeps the last, `multiValueHeaders` both; the documents do not say which
    // counts, so a refusal is as right as serving the one `headers` holds.
    let media = match media {
        Media::Accept if req.multi_value_headers.get_all("content-type").iter().count() > 1 => Media::Either,
        m => m,
    };
    let mut answers = match media {
        Media::Refuse => return vec![MEDIA_TYPE],
        Media::Either => vec![MEDIA_TYPE],
        Media::Accept => vec![],
    };
    answers.extend(model_body(caller, req));
    answers
}

/// From the body on: size, base64, form, client_id, scopes.
fn model_body(caller: &'static Caller, req: &ApiGatewayProxyRequest) -> Vec<Answer> {
    let raw = req.body.as_deref().unwrap_or_default();
    let body = if req.is_base64_encoded {
        if raw.len() > MAX_BASE64 {
            // Too long to decode to 8 KiB: refused for its size, or as the malformed base64 it may also be.
            return vec![TOO_LARGE, INVALID_REQUEST];
        }
        match STANDARD.decode(raw.trim_end()) {
            Err(_) => return vec![INVALID_REQUEST],
            Ok(b) => b,
        }
    } else {
        raw.as_bytes().to_vec()
    };
    if body.len() > MAX_BODY {
        return vec![TOO_LARGE];
    }
    let (scope, client_id) = match model_form(&body) {
        Ok(p) => p,
        Err(a) => return vec![a],
    };
    if client_id.is_some_and(|c| c != caller.id) {
        return vec![INVALID_CLIENT];
    }
    let scopes: BTreeSet<String> = match scope {
        None if caller.defaults.is_empty() => return vec![INVALID_SCOPE],
        None => caller.defaults.iter().map(|s| (*s).to_owned()).collect(),
        Some(s) => {
            let parts: Vec<&str> = s.split(' ').collect();
            if parts.len() > MAX_SCOPES || !parts.iter().all(|p| caller.allowed.contains(p)) {
                return vec![INVALID_SCOPE];
            }
            parts.into_iter().map(str::to_owned).collect()
        }
    };
    vec![Answer::Grant { caller: caller.id, scopes }]
}

/// The request id an error body must carry.
fn model_request_id(req: &ApiGatewayProxyRequest) -> &str {
    req.request_context.request_id.as_deref().filter(|r| !r.is_empty() && r.len() <= 128).unwrap_or(LAMBDA_REQUEST_ID)
}

/// Reads an answer the way a client would, checking its shape; the answer it stands for.
fn observe(w: &World, req: &ApiGatewayProxyRequest, r: &ApiGatewayProxyResponse) -> Result<Answer, String> {
    let header = |n: &str| r.headers.get(n).and_then(|v| v.to_str().ok());
    if header("cache-control") != Some("no-store") || header("pragma") != Some("no-cache") {
        return Err(format!("no-store headers missing: {:?}", r.headers));
    }
    if !header("content-type").is_some_and(|c| c.starts_with("application/json")) || r.is_base64_encoded {
        return Err(format!("not a JSON text answer: {:?}", r.headers));
    }
    let text = match &r.body {
        Some(Body::Text(t)) => t.as_str(),
        other => return Err(format!("body {other:?}")),
    };
    let v: Map<String, Value> =
        serde_json::from_str(text).map_err(|e| format!("body is not a JSON object: {e}: {text}"))?;
    let status = u16::try_from(r.status_code).map_err(|_| format!("status {}", r.status_code))?;
    if status == 200 {
        let mut keys: Vec<&str> = v.keys().map(String::as_str).collect();
        keys.sort_unstable();
        if keys != ["access_token", "expires_in", "scope", "token_type"] || v["token_type"] != "Bearer" {
            return Err(format!("token body: {text}"));
        }
        let claims = w.standin.verify_access_token(v["access_token"].as_str().unwrap_or_default());
        let claims = claims.map_err(|e| format!("the access token is not the stand-in's: {e:?}"))?;
        let scopes: BTreeSet<String> = v["scope"].as_str().unwrap_or_default().split(' ').map(str::to_owned).collect();
        let granted: BTreeSet<String> = claims.scope.split(' ').map(str::to_owned).collect();
        let Some(c) = CALLERS.iter().find(|c| claims.client_id == format!("{}-client", c.app)) else {
            return Err(format!("a token of an unknown app client {}", claims.client_id));
        };
        let lifetime = v["expires_in"].as_u64().ok_or("expires_in")?;
        if granted != scopes || lifetime == 0 || lifetime > c.max_lifetime {
            return Err(format!("scope {scopes:?} vs token {granted:?}, expires_in {lifetime}"));
        }
        return Ok(Answer::Grant { caller: c.id, scopes });
    }
    let mut keys: Vec<&str> = v.keys().map(String::as_str).collect();
    keys.sort_unstable();
    if keys != ["error", "error_description", "request_id"] {
        return Err(format!("error body members: {text}"));
    }
    if v["request_id"] != model_request_id(req) || v["error_description"].as_str().is_none_or(str::is_empty) {
        return Err(format!("request id or description: {text}"));
    }
    // The error table's status and code pairs, with the headers each row carries.
    let code = v["error"].as_str().unwrap_or_default();
    let documented = match (status, code) {
        (400, "invalid_request") => INVALID_REQUEST,
        (400, "unsupported_grant_type") => GRANT_TYPE,
        (400, "invalid_scope") => INVALID_SCOPE,
        (401, "invalid_client") => INVALID_CLIENT,
        (403, "unauthorized_client") => UNAUTHORIZED_CLIENT,
        (405, "invalid_request") if header("allow") == Some("POST") => NOT_POST,
        (413, "invalid_request") => TOO_LARGE,
        (415, "invalid_request") => MEDIA_TYPE,
        (429 | 503, "temporarily_unavailable") if header("retry-after").is_some_and(|s| s.parse::<u64>().is_ok()) => {
            Answer::Error(status, "temporarily_unavailable")
        }
        (500, "server_error") => SERVER_ERROR,
        (502, "server_error") => Answer::Error(502, "server_error"),
        _ => return Err(format!("undocumented answer {status} {text} {:?}", r.headers)),
    };
    Ok(documented)
}

fn check(w: &World, req: ApiGatewayProxyRequest) -> Result<Answer, TestCaseError> {
    let allowed = model(&req);
    let got = observe(w, &req, &w.run(req.clone())).map_err(TestCaseError::fail)?;
    if !allowed.contains(&got) {
        return Err(TestCaseError::fail(format!("got {got:?}, documented {allowed:?}")));
    }
    Ok(got)
}

// ---------------------------------------------------------------------------------------------------------------
// Generators.

#[derive(Debug, Clone)]
enum Ctx {
    Absent,
    Null,
    Map(Vec<(String, Option<Value>)>),
}

/// Lifetime of the MACs the generated events carry (the authorizer's default).
const MAC_TTL: u64 = 300;

/// The devkit's test key set, which the world's broker holds.
fn test_keys() -> &'static KeySet {
    static K: OnceLock<KeySet> = OnceLock::new();
    K.get_or_init(tb_devkit::fixtures::context_key_set)
}

/// How a generated context is signed, when its contract fields can be read at all.
#[derive(Debug, Clone, PartialEq, Eq)]
enum MacPlan {
    /// As the authorizer signs it: the test key, the event's API and stage, valid from now.
    Signed,
    /// No MAC entries: a direct invoke that does not know the key.
    Absent,
    /// Signed for another stage, or another API id, than the event carries.
    OtherStage,
    OtherApi,
    /// Signed as the authorizer would, then the event loses its `apiId` (not made by API Gateway).
    NoApiId,
    /// Signed long enough ago to have expired.
    Expired,
    /// Signed with a key of the same id but other bytes, or with a key id the broker does not hold.
    WrongKey,
    UnknownKey,
    /// Signed, then one character of the MAC changed.
    FlippedTag,
    /// Signed, then the expiry moved an hour later.
    MovedExpiry,
}

fn mac_plan() -> impl Strategy<Value = MacPlan> {
    prop_oneof![
        40 => Just(MacPlan::Signed),
        2 => Just(MacPlan::Absent),
        1 => Just(MacPlan::OtherStage),
        1 => Just(MacPlan::OtherApi),
        1 => Just(MacPlan::NoApiId),
        1 => Just(MacPlan::Expired),
        1 => Just(MacPlan::WrongKey),
        1 => Just(MacPlan::UnknownKey),
        1 => Just(MacPlan::FlippedTag),
        1 => Just(MacPlan::MovedExpiry),
    ]
}

/// Adds the MAC entries `plan` asks for to the event JSON `e`, whose `requestContext.authorizer` is already set.
/// A context whose contract fields cannot be read gets none: the authorizer never signs such a context.
fn apply_mac(e: &mut Value, plan: &MacPlan) {
    let rc = &mut e["requestContext"];
    let Some(fields) = rc.get("authorizer").and_then(Value::as_object) else { return };
    let map: HashMap<String, Value> = fields.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let Ok(ctx) = CallerContext::from_map(&map) else { return };
    let mut api = ApiBinding {
        api_id: rc["apiId"].as_str().unwrap_or_default().to_owned(),
        stage: rc["stage"].as_str().unwrap_or_default().to_owned(),
    };
    let other_key;
    let mut keys = test_keys();
    let mut now = SystemTime::now();
    match plan {
        MacPlan::Absent => return,
        MacPlan::OtherStage => api.stage = "other-stage".into(),
        MacPlan::OtherApi => api.api_id = "zz9zz9zz9z".into(),
        MacPlan::Expired => now -= Duration::from_secs(MAC_TTL + 120),
        MacPlan::WrongKey => {
            other_key = KeySet::single(tb_devkit::fixtures::CONTEXT_KEY_ID, vec![0x5a; 32]).unwrap();
            keys = &other_key;
        }
        MacPlan::UnknownKey => {
            other_key = KeySet::single("not-held", tb_devkit::fixtures::CONTEXT_KEY_BYTES.to_vec()).unwrap();
            keys = &other_key;
        }
        MacPlan::Signed | MacPlan::NoApiId | MacPlan::FlippedTag | MacPlan::MovedExpiry => {}
    }
    let auth = rc["authorizer"].as_object_mut().unwrap();
    for (k, v) in sign(&ctx, &api, keys, now, Duration::from_secs(MAC_TTL)) {
        auth.insert(k.to_owned(), json!(v));
    }
    match plan {
        MacPlan::NoApiId => drop(rc.as_object_mut().unwrap().remove("apiId")),
        MacPlan::FlippedTag => {
            let mut tag: Vec<u8> = auth[KEY_MAC].as_str().unwrap().bytes().collect();
            tag[0] = if tag[0] == b'A' { b'B' } else { b'A' };
            auth.insert(KEY_MAC.into(), json!(String::from_utf8(tag).unwrap()));
        }
        MacPlan::MovedExpiry => {
            let e: u64 = auth[KEY_MAC_EXPIRES].as_str().unwrap().parse().unwrap();
            auth.insert(KEY_MAC_EXPIRES.into(), json!((e + 3600).to_string()));
        }
        _ => {}
    }
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        prop::num::f64::NORMAL.prop_map(Value::from),
        "[ -~]{0,20}".prop_map(Value::from),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-z]{1,6}", inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Mostly the valid value, sometimes anything: the others are right, so one bad value decides.
fn mostly<T: std::fmt::Debug + Clone + 'static>(
    good: impl Strategy<Value = T> + 'static,
    other: impl Strategy<Value = T> + 'static,
) -> BoxedStrategy<T> {
    prop_oneof![10 => good, 1 => other].boxed()
}

fn context_value(good: BoxedStrategy<Value>) -> BoxedStrategy<Option<Value>> {
    mostly(
        good.prop_map(Some),
        prop_oneof![
            Just(None),
            Just(Some(Value::Null)),
            Just(Some(json!(""))),
            Just(Some(json!("x".repeat(129)))),
            Just(Some(json!("has space"))),
            Just(Some(json!("caf\u{e9}"))),
            Just(Some(json!(42))),
            Just(Some(json!(1.5))),
            Just(Some(json!(true))),
            Just(Some(json!(["mtls"]))),
            any_json().prop_map(Some),
        ],
    )
}

fn context() -> impl Strategy<Value = Ctx> {
    let ids = prop_oneof![
        8 => prop::sample::select(CALLERS.iter().map(|c| c.id).collect::<Vec<_>>()).prop_map(Value::from),
        1 => Just(json!("unknown-svc")),
        1 => Just(json!("SVC-A")),
        1 => Just(json!("x".repeat(64))),
        1 => Just(json!("svc-a ")),
    ]
    .boxed();
    let method = prop_oneof![Just(json!("mtls")), Just(json!("jwt"))].boxed();
    let visible = prop_oneof![
        "[!-~]{1,40}".prop_map(Value::from),
        Just(json!("x".repeat(128))),
        Just(json!(7)),
        Just(json!(false))
    ]
    .boxed();
    let map = (
        context_value(ids),
        context_value(method),
        context_value(visible.clone()),
        context_value(visible),
        prop::collection::vec(
            prop_oneof![
                Just("principalId".to_owned()),
                Just("integrationLatency".to_owned()),
                Just("callerid".to_owned()),
                "[a-zA-Z]{1,12}",
            ]
            .prop_flat_map(|k| any_json().prop_map(move |v| (k.clone(), Some(v)))),
            0..3,
        ),
    )
        .prop_map(|(id, method, fp, version, extra)| {
            let mut m = vec![
                ("callerId".to_owned(), id),
                ("authMethod".to_owned(), method),
                ("credentialFingerprint".to_owned(), fp),
                ("policyVersion".to_owned(), version),
            ];
            // Extra keys never replace a contract key.
            m.extend(extra.into_iter().filter(|(k, _)| {
                !["callerId", "authMethod", "credentialFingerprint", "policyVersion"].contains(&k.as_str())
            }));
            Ctx::Map(m)
        });
    prop_oneof![20 => map, 1 => Just(Ctx::Absent), 1 => Just(Ctx::Null)]
}

/// A context as the authorizer writes it, for an enabled registered caller.
fn valid_context() -> impl Strategy<Value = Ctx> {
    let ids: Vec<&'static str> = CALLERS.iter().filter(|c| c.enabled).map(|c| c.id).collect();
    (prop::sample::select(ids), prop::sample::select(vec!["mtls", "jwt"]), "[0-9a-f]{16}", "[0-9a-f]{16}").prop_map(
        |(id, method, fp, version)| {
            Ctx::Map(vec![
                ("callerId".into(), Some(json!(id))),
                ("authMethod".into(), Some(json!(method))),
                ("credentialFingerprint".into(), Some(json!(fp))),
                ("policyVersion".into(), Some(json!(version))),
                ("principalId".into(), Some(json!(id))),
                ("integrationLatency".into(), Some(json!(12))),
            ])
        },
    )
}

fn method() -> impl Strategy<Value = String> {
    mostly(
        Just("POST".to_owned()),
        prop_oneof![
            prop::sample::select(vec!["GET", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "post", "Post", "M-SEARCH"])
                .prop_map(str::to_owned),
            "[A-Z]{1,10}",
        ],
    )
}

fn content_type_value() -> impl Strategy<Value = String> {
    let essence = mostly(
        prop_oneof![
            4 => Just(FORM.to_owned()),
            1 => Just("Application/X-WWW-Form-Urlencoded".to_owned()),
            1 => Just("APPLICATION/X-WWW-FORM-URLENCODED".to_owned()),
            1 => Just(format!(" {FORM} ")),
        ],
        prop_oneof![
            Just("application/json".to_owned()),
            Just("text/plain".to_owned()),
            Just("multipart/form-data".to_owned()),
            Just(format!("{FORM}x")),
            Just(format!("{FORM}, text/plain")),
            Just(String::new()),
            "[ -~]{0,30}",
        ],
    );
    let param = prop_oneof![
        4 => prop::sample::select(vec!["charset=UTF-8", "charset=utf-8", "charset=\"utf-8\"", "charset=us-ascii", "CHARSET=US-ASCII", "Charset=\"US-ASCII\""]),
        2 => prop::sample::select(vec!["charset=latin1", "charset=iso-8859-1", "charset=utf-16", "charset=", "charset=\"\"", "charset=utf8"]),
        2 => prop::sample::select(vec!["boundary=x", "q=1", "x-note=\"a b\""]),
        2 => prop::sample::select(vec!["", " ", "charset", "=utf-8", "charset = utf-8", "charset=\"utf-8", "charset=utf-8\"", "a=\"b;c\""]),
    ];
    (essence, prop::collection::vec((param, prop::sample::select(vec![";", "; ", " ;", ";\t"])), 0..3)).prop_map(
        |(essence, params)| {
            let mut s = essence;
            for (p, sep) in params {
                s.push_str(sep);
                s.push_str(p);
            }
            s
        },
    )
}

/// Content-Type headers: (which letters are upper case, value).
fn content_types() -> impl Strategy<Value = Vec<(u16, String)>> {
    prop_oneof![
        12 => content_type_value().prop_map(|v| vec![(0u16, v)]),
        1 => Just(vec![]),
        2 => prop::collection::vec((any::<u16>(), content_type_value()), 2..4),
        1 => (any::<u16>(), content_type_value()).prop_map(|(c, v)| vec![(c, v)]),
    ]
}

#[derive(Debug, Clone)]
enum Enc {
    /// Characters left as they are where the form allows it, `%XX` otherwise.
    Plain,
    /// Every byte but unreserved ones as `%XX`, upper or lower case hex.
    Percent { lower: bool },
    /// As `form_urlencoded` writes it (`+` for a space).
    Serializer,
    /// Exactly as given, reserved characters included.
    Raw,
}

#[derive(Debug, Clone)]
struct Pair {
    key: String,
    value: String,
    key_enc: Enc,
    value_enc: Enc,
    /// `key` alone, without `=`.
    no_equals: bool,
}

fn scope_value() -> impl Strategy<Value = String> {
    let scope = prop_oneof![
        6 => prop::sample::select(vec!["api/read", "api/write", "api/admin", ODD_SCOPE, ODD_SCOPE]).prop_map(str::to_owned),
        1 => prop::sample::select(vec!["api/READ", "api/delete", "openid", "api/read\"", "api\\read", "\u{e9}"]).prop_map(str::to_owned),
        1 => "[!-~]{1,12}",
    ];
    prop_oneof![
        10 => prop::collection::vec(scope, 1..4).prop_map(|v| v.join(" ")),
        1 => prop::sample::select(vec!["", " ", "api/read  api/write", " api/read", "api/read ", "api/read\tapi/write", "api/read+api/write"])
            .prop_map(str::to_owned),
        1 => Just(vec!["api/read"; MAX_SCOPES].join(" ")),
        1 => Just(vec!["api/read"; MAX_SCOPES + 1].join(" ")),
    ]
}

fn pair() -> impl Strategy<Value = Pair> {
    let enc = || prop_oneof![4 => Just(Enc::Serializer), 2 => Just(Enc::Plain), 1 => any::<bool>().prop_map(|lower| Enc::Percent { lower }), 1 => Just(Enc::Raw)];
    let keyed = prop_oneof![
        6 => Just("scope".to_owned()).prop_flat_map(|k| scope_value().prop_map(move |v| (k.clone(), v))),
        3 => Just("client_id".to_owned()).prop_flat_map(|k| {
            prop_oneof![
                4 => prop::sample::select(CALLERS.iter().map(|c| c.id.to_owned()).collect::<Vec<_>>()),
                1 => Just(String::new()),
                1 => "[ -~]{1,12}",
            ]
            .prop_map(move |v| (k.clone(), v))
        }),
        2 => Just("grant_type".to_owned()).prop_flat_map(|k| {
            prop_oneof![
                3 => Just("client_credentials".to_owned()),
                1 => prop::sample::select(vec!["", "password", "authorization_code", "client_credentials ", "CLIENT_CREDENTIALS", "refresh_token"])
                    .prop_map(str::to_owned),
            ]
            .prop_map(move |v| (k.clone(), v))
        }),
        1 => prop::sample::select(vec!["client_secret", "client_assertion", "client_assertion_type"])
            .prop_flat_map(|k| "[ -~]{0,12}".prop_map(move |v| (k.to_owned(), v))),
        1 => prop::sample::select(vec!["Grant_Type", "grant_type ", "audience", "resource", "", "scope[]"])
            .prop_flat_map(|k| "[ -~]{0,12}".prop_map(move |v| (k.to_owned(), v))),
        1 => ("[ -~\u{e9}]{1,8}", "[ -~\u{e9}]{0,12}"),
    ];
    (keyed, enc(), enc(), prop::bool::weighted(0.03)).prop_map(|((key, value), key_enc, value_enc, no_equals)| Pair {
        key,
        value,
        key_enc,
        value_enc,
        no_equals,
    })
}

#[derive(Debug, Clone)]
enum Junk {
    None,
    LeadingAmp,
    TrailingAmp,
    DoubleAmp(Index),
    Insert(Index, &'static str),
}

#[derive(Debug, Clone)]
enum BodyPlan {
    Absent,
    Null,
    /// `grant_type=client_credentials` first when `grant`, then `pairs` (each key once unless `repeat`).
    Form {
        grant: bool,
        pairs: Vec<Pair>,
        repeat: bool,
        junk: Junk,
        pad: Option<usize>,
    },
    Text(String),
    Bytes(Vec<u8>),
}

fn body_plan() -> impl Strategy<Value = BodyPlan> {
    let junk = prop_oneof![
        12 => Just(Junk::None),
        1 => Just(Junk::LeadingAmp),
        1 => Just(Junk::TrailingAmp),
        1 => any::<Index>().prop_map(Junk::DoubleAmp),
        2 => (any::<Index>(), prop::sample::select(vec!["%", "%4", "%zz", "%C3%28", "%FF", "%00", "%2", "\u{e9}", "=", "+", "%25", "&x", "&=v"]))
            .prop_map(|(i, s)| Junk::Insert(i, s)),
    ];
    let pad = prop_oneof![
        12 => Just(None),
        1 => prop_oneof![MAX_BODY - 40..MAX_BODY + 40, MAX_BODY + 40..4 * MAX_BODY].prop_map(Some),
    ];
    prop_oneof![
        20 => (prop::bool::weighted(0.9), prop::collection::vec(pair(), 0..4), prop::bool::weighted(0.15), junk, pad)
            .prop_map(|(grant, pairs, repeat, junk, pad)| BodyPlan::Form { grant, pairs, repeat, junk, pad }),
        1 => Just(BodyPlan::Absent),
        1 => Just(BodyPlan::Null),
        1 => "\\PC{0,60}".prop_map(BodyPlan::Text),
        1 => prop::collection::vec(any::<u8>(), 0..60).prop_map(BodyPlan::Bytes),
    ]
}

#[derive(Debug, Clone)]
enum B64 {
    /// Sent as text.
    No,
    /// Encoded as API Gateway encodes a binary body, perhaps with a line end.
    Yes {
        newline: bool,
    },
    /// The flag says base64, the text is damaged.
    Damaged(Index, &'static str),
    /// The flag is JSON null or missing.
    NullFlag,
    MissingFlag,
}

fn b64() -> impl Strategy<Value = B64> {
    prop_oneof![
        14 => Just(B64::No),
        4 => any::<bool>().prop_map(|newline| B64::Yes { newline }),
        2 => (any::<Index>(), prop::sample::select(vec!["", "=", "==", "-", "_", " ", "\n", "*", "A", "AB"])).prop_map(|(i, s)| B64::Damaged(i, s)),
        1 => Just(B64::NullFlag),
        1 => Just(B64::MissingFlag),
    ]
}

#[derive(Debug, Clone)]
struct EventPlan {
    method: String,
    content_types: Vec<(u16, String)>,
    mirror_multi: bool,
    noise: Vec<(String, String)>,
    body: BodyPlan,
    b64: B64,
    ctx: Ctx,
    mac: MacPlan,
    request_id: Option<Option<String>>,
}

fn event_plan() -> impl Strategy<Value = EventPlan> {
    (
        method(),
        content_types(),
        prop::bool::weighted(0.9),
        prop::collection::vec(("[a-z][a-z0-9-]{0,12}", "[ -~]{0,30}"), 0..3),
        body_plan(),
        b64(),
        (prop_oneof![5 => valid_context(), 1 => context()], mac_plan()),
        prop::option::weighted(
            0.95,
            prop::option::weighted(0.97, prop_oneof![10 => "[a-f0-9-]{36}", 1 => "[ -~]{0,8}", 1 => "[a-z]{129,140}"]),
        ),
    )
        .prop_map(|(method, content_types, mirror_multi, noise, body, b64, (ctx, mac), request_id)| EventPlan {
            method,
            content_types,
            mirror_multi,
            noise,
            body,
            b64,
            ctx,
            mac,
            request_id,
        })
}

fn encode(s: &str, enc: &Enc) -> String {
    let keep = |b: u8| b.is_ascii_alphanumeric() || b"-._~".contains(&b);
    match enc {
        Enc::Raw => s.to_owned(),
        Enc::Serializer => form_urlencoded::byte_serialize(s.as_bytes()).collect(),
        Enc::Plain => s
            .bytes()
            .map(|b| {
                if b.is_ascii_graphic() && !b"%&+=".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect(),
        Enc::Percent { lower } => s
            .bytes()
            .map(|b| match (keep(b), lower) {
                (true, _) => (b as char).to_string(),
                (false, false) => format!("%{b:02X}"),
                (false, true) => format!("%{b:02x}"),
            })
            .collect(),
    }
}

fn body_text(p: &BodyPlan) -> Option<Vec<u8>> {
    match p {
        BodyPlan::Absent | BodyPlan::Null => None,
        BodyPlan::Text(t) => Some(t.clone().into_bytes()),
        BodyPlan::Bytes(b) => Some(b.clone()),
        BodyPlan::Form { grant, pairs, repeat, junk, pad } => {
            let mut parts: Vec<String> = Vec::new();
            let mut keys: Vec<&str> = Vec::new();
            if *grant {
                parts.push("grant_type=client_credentials".into());
                keys.push("grant_type");
            }
            for p in pairs {
                if !repeat && keys.contains(&p.key.as_str()) {
                    continue;
                }
                keys.push(&p.key);
                let k = encode(&p.key, &p.key_enc);
                parts.push(if p.no_equals { k } else { format!("{k}={}", encode(&p.value, &p.value_enc)) });
            }
            if let Some(n) = pad {
                parts.push(format!("pad={}", "a".repeat(n.saturating_sub(4))));
            }
            let mut s = parts.join("&");
            match junk {
                Junk::None => {}
                Junk::LeadingAmp => s.insert(0, '&'),
                Junk::TrailingAmp => s.push('&'),
                Junk::DoubleAmp(i) => {
                    let amps: Vec<usize> = s.match_indices('&').map(|(i, _)| i).collect();
                    if !amps.is_empty() {
                        s.insert(amps[i.index(amps.len())], '&');
                    }
                }
                Junk::Insert(i, what) => {
                    let bounds: Vec<usize> = (0..=s.len()).filter(|b| s.is_char_boundary(*b)).collect();
                    s.insert_str(bounds[i.index(bounds.len())], what);
                }
            }
            Some(s.into_bytes())
        }
    }
}

fn case_name(name: &str, case: u16) -> String {
    name.chars().enumerate().map(|(i, c)| if case >> i & 1 == 1 { c.to_ascii_uppercase() } else { c }).collect()
}

/// The proxy event JSON the plan describes, read as the Lambda runtime reads it.
fn event(p: &EventPlan) -> Result<ApiGatewayProxyRequest, String> {
    let mut e = tb_devkit::events::ProxyRequestBuilder::new("svc-a", "").unsigned().to_json();
    e["httpMethod"] = json!(p.method);
    e["requestContext"]["httpMethod"] = json!(p.method);
    let mut headers = Map::new();
    let mut multi = Map::new();
    let mut add = |k: String, v: &str, headers: &mut Map<String, Value>| {
        headers.insert(k.clone(), json!(v));
        let slot = multi.entry(k).or_insert_with(|| json!([]));
        slot.as_array_mut().unwrap().push(json!(v));
    };
    for (k, v) in [("accept", "application/json"), ("host", "tokens.example.internal"), ("user-agent", "curl/8.5.0")] {
        add(k.to_owned(), v, &mut headers);
    }
    for (k, v) in &p.noise {
        add(k.clone(), v, &mut headers);
    }
    for (case, v) in &p.content_types {
        add(case_name("content-type", *case), v, &mut headers);
    }
    e["headers"] = Value::Object(headers);
    e["multiValueHeaders"] = if p.mirror_multi { Value::Object(multi) } else { json!({}) };

    let raw = body_text(&p.body);
    let (body, flag) = match (&p.b64, raw) {
        (_, None) => (None, json!(false)),
        (B64::No | B64::NullFlag | B64::MissingFlag, Some(b)) => {
            // Text bodies are strings: bytes that are not UTF-8 cannot be sent without base64.
            (Some(String::from_utf8_lossy(&b).into_owned()), json!(false))
        }
        (B64::Yes { newline }, Some(b)) => (Some(STANDARD.encode(&b) + if *newline { "\n" } else { "" }), json!(true)),
        (B64::Damaged(i, what), Some(b)) => {
            let mut t = STANDARD.encode(&b);
            let at = i.index(t.len() + 1);
            t.insert_str(at, what);
            (Some(t), json!(true))
        }
    };
    match (&p.body, body) {
        (BodyPlan::Absent, _) => drop(e.as_object_mut().unwrap().remove("body")),
        (BodyPlan::Null, _) => e["body"] = Value::Null,
        (_, b) => e["body"] = json!(b),
    }
    match p.b64 {
        B64::NullFlag => e["isBase64Encoded"] = Value::Null,
        B64::MissingFlag => drop(e.as_object_mut().unwrap().remove("isBase64Encoded")),
        _ => e["isBase64Encoded"] = flag,
    }

    let rc = &mut e["requestContext"];
    match &p.ctx {
        Ctx::Absent => drop(rc.as_object_mut().unwrap().remove("authorizer")),
        Ctx::Null => rc["authorizer"] = Value::Null,
        Ctx::Map(m) => {
            rc["authorizer"] = Value::Object(m.iter().filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v))).collect());
        }
    }
    apply_mac(&mut e, &p.mac);
    let rc = &mut e["requestContext"];
    match &p.request_id {
        None => drop(rc.as_object_mut().unwrap().remove("requestId")),
        Some(None) => rc["requestId"] = Value::Null,
        Some(Some(id)) => rc["requestId"] = json!(id),
    }
    let text = e.to_string();
    serde_json::from_str(&text).map_err(|err| format!("the runtime could not read the event: {err}: {text}"))
}

/// A grant that succeeds for `ctx`'s caller when the context is valid: POST, form content type, `grant_type` only.
fn grant_plan(ctx: Ctx) -> EventPlan {
    EventPlan {
        mac: MacPlan::Signed,
        method: "POST".into(),
        content_types: vec![(0, FORM.into())],
        mirror_multi: true,
        noise: vec![],
        body: BodyPlan::Form { grant: true, pairs: vec![], repeat: false, junk: Junk::None, pad: None },
        b64: B64::No,
        ctx,
        request_id: Some(Some("apigw-request-1".into())),
    }
}

/// A well-formed request of a valid context: only the form varies.
fn form_plan() -> impl Strategy<Value = EventPlan> {
    (body_plan(), b64(), prop::sample::select(CALLERS.iter().map(|c| c.id).collect::<Vec<_>>())).prop_map(
        |(body, b64, id)| {
            let ctx = Ctx::Map(vec![
                ("callerId".into(), Some(json!(id))),
                ("authMethod".into(), Some(json!("mtls"))),
                ("credentialFingerprint".into(), Some(json!("9f86d081884c7d65"))),
                ("policyVersion".into(), Some(json!("0123456789abcdef"))),
            ]);
            EventPlan {
                method: "POST".into(),
                content_types: vec![(0, FORM.into())],
                mirror_multi: true,
                noise: vec![],
                body,
                b64,
                ctx,
                mac: MacPlan::Signed,
                request_id: Some(Some("apigw-request-1".into())),
            }
        },
    )
}

// ---------------------------------------------------------------------------------------------------------------
// The targets.

proptest! {
    #![proptest_config(config())]

    /// Proxy events of any shape: any method; Content-Type absent, repeated under several spellings, with any
    /// parameters; bodies as text or base64 (valid, damaged, null flag); forms with any parameters, encodings and
    /// junk, up to four times the size limit; the authorizer context absent, null, or with any value under each key
    /// and extra keys; any request id. The answer is one the model allows, with the documented shape.
    #[test]
    fn proxy_events_of_any_shape_get_a_documented_answer(plan in event_plan()) {
        let w = world();
        let req = event(&plan).map_err(TestCaseError::fail)?;
        check(w, req)?;
    }

    /// Form bodies of a well-formed request from each registered caller: every parameter, encoding, repetition,
    /// percent-escape and size edge; text or base64.
    #[test]
    fn form_bodies_get_a_documented_answer(plan in form_plan()) {
        let w = world();
        let req = event(&plan).map_err(TestCaseError::fail)?;
        check(w, req)?;
    }

    /// Authorizer context maps of any shape in front of a grant that would otherwise succeed: missing keys, null,
    /// numbers, booleans, arrays, objects, empty, oversized and non-ASCII values, extra keys; signed, unsigned or
    /// with a broken MAC. 500 unless the contract holds and the MAC is the authorizer's for this API and stage, then
    /// 403 unless the caller is registered and enabled, else the grant.
    #[test]
    fn authorizer_context_maps_get_a_documented_answer(ctx in context(), mac in mac_plan()) {
        let w = world();
        let plan = EventPlan { mac: mac.clone(), ..grant_plan(ctx) };
        let req = event(&plan).map_err(TestCaseError::fail)?;
        let got = check(w, req)?;
        // Independently of the model's MAC rule: a context not signed as the authorizer signs it is never served.
        if mac != MacPlan::Signed {
            prop_assert_eq!(got, SERVER_ERROR, "{:?}", mac);
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Cases the targets found, kept as plain tests.

/// Found by `proxy_events_of_any_shape_get_a_documented_answer` (minimal input: a valid grant with
/// `Content-Type: application/x-www-form-urlencoded;`, once answered 415). RFC 9110 §5.6.6 allows an empty parameter
/// (`parameters = *( OWS ";" OWS [ parameter ] )`), so these are form content types and are served.
#[test]
fn an_empty_content_type_parameter_is_still_a_form() {
    let w = world();
    for ct in
        [format!("{FORM};"), format!("{FORM}; charset=utf-8;"), format!("{FORM} ; "), format!("{FORM};;charset=utf-8")]
    {
        let ctx = Ctx::Map(vec![
            ("callerId".into(), Some(json!("svc-a"))),
            ("authMethod".into(), Some(json!("mtls"))),
            ("credentialFingerprint".into(), Some(json!("9f86d081884c7d65"))),
            ("policyVersion".into(), Some(json!("0123456789abcdef"))),
        ]);
        let plan = EventPlan { content_types: vec![(0, ct.clone())], ..grant_plan(ctx) };
        let req = event(&plan).unwrap();
        let got = observe(w, &req, &w.run(req.clone())).unwrap();
        assert!(matches!(got, Answer::Grant { caller: "svc-a", .. }), "{ct:?}: {got:?}");
    }
}
