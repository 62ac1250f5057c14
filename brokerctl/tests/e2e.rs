//! End-to-end: the local stack started in-process on free ports, driven over real TLS by a real HTTPS client with
//! client certificates. Every case runs twice: on the embedded stores, and with DynamoDB, SSM and S3 on moto
//! (`scripts/with-moto.sh` exports `TB_MOTO_ENDPOINT`; the moto cases fail, never skip, without it).

use std::sync::atomic::Ordering;
use std::time::Duration;

use brokerctl::devstack::{DevOptions, IdentitySource, IpRateLimit};
use e2e_common::{client, client_with, dev_ca, scopes, start, token_request, Mode};
use serde_json::Value;

#[macro_use]
mod e2e_common;

async fn callers_get_tokens_with_their_scopes(mode: Mode) {
    let s = start(mode, "scopes", |_| {}).await;
    let orders = client(&s, Some("order-processing"));
    let (st, body) =
        token_request(&orders, &s.mtls_url(), Some("customer-api/read customer-api/write customer-api/admin"), None)
            .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(scopes(&body), ["customer-api/admin", "customer-api/read", "customer-api/write"]);
    assert_eq!(body["token_type"], "Bearer");
    let claims = s.standin().unwrap().verify_access_token(body["access_token"].as_str().unwrap()).unwrap();
    assert_eq!(claims.scopes().len(), 3);

    let reporting = client(&s, Some("reporting"));
    let (st, body) = token_request(&reporting, &s.mtls_url(), None, None).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(scopes(&body), ["customer-api/read"]);
    let (st, body) = token_request(&reporting, &s.mtls_url(), Some("customer-api/admin"), None).await;
    assert_eq!((st, body["error"].as_str()), (400, Some("invalid_scope")), "{body}");
}

async fn read_only_token_is_refused_by_delete_and_accepted_by_get(mode: Mode) {
    let s = start(mode, "resource", |_| {}).await;
    let reporting = client(&s, Some("reporting"));
    let (st, body) = token_request(&reporting, &s.mtls_url(), None, None).await;
    assert_eq!(st, 200, "{body}");
    let token = body["access_token"].as_str().unwrap().to_owned();
    let anon = client(&s, None);
    let del = anon.delete(format!("{}/customers/123", s.resource_url())).bearer_auth(&token).send().await.unwrap();
    assert_eq!(del.status().as_u16(), 403);
    assert!(del.headers()["www-authenticate"].to_str().unwrap().contains("insufficient_scope"));
    assert_eq!(del.json::<Value>().await.unwrap()["error"], "insufficient_scope");
    let get = anon.get(format!("{}/customers", s.resource_url())).bearer_auth(&token).send().await.unwrap();
    assert_eq!(get.status().as_u16(), 200);
    let none = anon.get(format!("{}/customers", s.resource_url())).send().await.unwrap();
    assert_eq!(none.status().as_u16(), 401);

    // order-processing's tokens are bound to its certificate: served on the mTLS listener to that certificate.
    let orders = client(&s, Some("order-processing"));
    let (_, body) = token_request(&orders, &s.mtls_url(), Some("customer-api/admin"), None).await;
    let admin = body["access_token"].as_str().unwrap().to_owned();
    let url = format!("{}/customers/123", s.resource_mtls_url());
    let del = orders.delete(url).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(del.status().as_u16(), 200);
}

async fn a_trusted_certificate_no_caller_owns_gets_403(mode: Mode) {
    let s = start(mode, "stranger", |_| {}).await;
    let (st, body) = token_request(&client(&s, Some("stranger")), &s.mtls_url(), None, None).await;
    assert_eq!(st, 403, "{body}");
    assert_eq!(body["error"], "unauthorized_client");
    assert!(body["request_id"].as_str().is_some_and(|r| r.len() == 36), "{body}");
    assert_eq!(s.stats().broker_calls.load(Ordering::Relaxed), 0);
}

async fn no_client_certificate_fails_the_handshake(mode: Mode) {
    let s = start(mode, "nocert", |_| {}).await;
    let r = client(&s, None)
        .post(format!("{}/oauth2/token", s.mtls_url()))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await;
    assert!(r.is_err(), "the mTLS listener answered without a client certificate: {r:?}");
    assert_eq!(s.stats().requests.load(Ordering::Relaxed), 0, "no HTTP request may get through");
}

async fn partner_jwt_gets_a_token_and_an_expired_one_401(mode: Mode) {
    let s = start(mode, "partner", |_| {}).await;
    let c = client(&s, None);
    let token = s.state().partner_token().unwrap();
    let (st, body) = token_request(&c, &s.partner_url(), None, Some(&token)).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(scopes(&body), ["customer-api/read"]);

    let expired = s
        .state()
        .partner_token_with(
            brokerctl::devstack::state::PARTNER_SUBJECT,
            Duration::from_secs(240),
            Duration::from_secs(120),
        )
        .unwrap();
    let (st, body) = token_request(&c, &s.partner_url(), None, Some(&expired)).await;
    assert_eq!(st, 401, "{body}");
    assert_eq!(body["error"], "invalid_client");
    let (st, _) = token_request(&c, &s.partner_url(), None, None).await;
    assert_eq!(st, 401);
}

async fn a_burst_over_the_stage_limit_gets_429_before_the_authorizer(mode: Mode) {
    let s = start(mode, "burst", |o| {
        o.gateway.stage_rate = 0.01;
        o.gateway.stage_burst = 3;
    })
    .await;
    let c = client(&s, Some("order-processing"));
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(token_request(&c, &s.mtls_url(), None, None).await.0);
    }
    let throttled = statuses.iter().filter(|&&x| x == 429).count() as u64;
    assert!(throttled >= 4, "{statuses:?}");
    let st = s.stats();
    assert_eq!(st.stage_throttled.load(Ordering::Relaxed), throttled);
    assert_eq!(st.authorizer_calls.load(Ordering::Relaxed), 8 - throttled, "throttled requests reached the authorizer");
    let resp = c
        .post(format!("{}/oauth2/token", s.mtls_url()))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 429);
    assert_eq!(resp.headers()["retry-after"], "1");
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "temporarily_unavailable");
}

async fn a_caller_limited_to_three_a_day_gets_429_on_the_fourth(mode: Mode) {
    let s = start(mode, "quota", |_| {}).await;
    let c = client(&s, Some("reporting"));
    for i in 0..3 {
        let (st, body) = token_request(&c, &s.mtls_url(), None, None).await;
        assert_eq!(st, 200, "grant {i}: {body}");
    }
    let resp = c
        .post(format!("{}/oauth2/token", s.mtls_url()))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 429);
    assert!(resp.headers().contains_key("retry-after"));
    let issued = s.standin().unwrap().tokens_issued();
    assert_eq!(issued, 3, "the fourth request reached Cognito");
    if let Mode::Moto = mode {
        // The stack's table is the deployed one: counters of ended windows expire by TTL on the broker's attribute.
        let sdk = tb_devkit::moto::sdk_config().await;
        let ttl = aws_sdk_dynamodb::Client::new(&sdk)
            .describe_time_to_live()
            .table_name(&s.aws_names().quota_table)
            .send()
            .await
            .unwrap();
        let d = ttl.time_to_live_description().expect("a TTL description");
        assert_eq!(d.attribute_name(), Some(tb_broker::quota_table::TTL_ATTR));
        assert!(matches!(
            d.time_to_live_status(),
            Some(
                aws_sdk_dynamodb::types::TimeToLiveStatus::Enabled
                    | aws_sdk_dynamodb::types::TimeToLiveStatus::Enabling
            )
        ));
    }
}

async fn a_second_request_inside_the_cache_ttl_does_not_call_the_authorizer(mode: Mode) {
    let s = start(mode, "cache", |o| {
        o.gateway.authorizer_cache_ttl = Duration::from_secs(300);
        o.gateway.identity_sources = vec![IdentitySource::Header("Authorization".into())];
    })
    .await;
    let c = client(&s, None);
    let token = s.state().partner_token().unwrap();
    assert_eq!(token_request(&c, &s.partner_url(), None, Some(&token)).await.0, 200);
    assert_eq!(token_request(&c, &s.partner_url(), None, Some(&token)).await.0, 200);
    assert_eq!(s.stats().authorizer_calls.load(Ordering::Relaxed), 1);
    assert_eq!(s.stats().authorizer_cache_hits.load(Ordering::Relaxed), 1);

    // Denials are cached too: an unregistered partner subject is asked about once.
    let stranger = s.state().partner_token_with("nobody", Duration::ZERO, Duration::from_secs(120)).unwrap();
    assert_eq!(token_request(&c, &s.partner_url(), None, Some(&stranger)).await.0, 403);
    assert_eq!(token_request(&c, &s.partner_url(), None, Some(&stranger)).await.0, 403);
    assert_eq!(s.stats().authorizer_calls.load(Ordering::Relaxed), 2);

    // A missing identity source is a 401 from the gateway itself.
    assert_eq!(token_request(&c, &s.partner_url(), None, None).await.0, 401);
    assert_eq!(s.stats().authorizer_calls.load(Ordering::Relaxed), 2);
}

async fn a_certificate_revoked_by_a_crl_update_is_refused_after_the_refresh(mode: Mode) {
    let s = start(mode, "revoke", |o| o.trust_refresh = Duration::from_millis(200)).await;
    let c = client(&s, Some("order-processing"));
    assert_eq!(token_request(&c, &s.mtls_url(), None, None).await.0, 200);
    s.revoke("order-processing").await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (st, body) = token_request(&c, &s.mtls_url(), None, None).await;
    assert_eq!(st, 403, "{body}");
    assert_eq!(body["error"], "unauthorized_client");
    // The other caller is unaffected.
    assert_eq!(token_request(&client(&s, Some("reporting")), &s.mtls_url(), None, None).await.0, 200);
}

both!(
    callers_get_tokens_with_their_scopes,
    read_only_token_is_refused_by_delete_and_accepted_by_get,
    a_trusted_certificate_no_caller_owns_gets_403,
    no_client_certificate_fails_the_handshake,
    partner_jwt_gets_a_token_and_an_expired_one_401,
    a_burst_over_the_stage_limit_gets_429_before_the_authorizer,
    a_caller_limited_to_three_a_day_gets_429_on_the_fourth,
    a_second_request_inside_the_cache_ttl_does_not_call_the_authorizer,
    a_certificate_revoked_by_a_crl_update_is_refused_after_the_refresh,
);

/// API Gateway's mTLS domain checks the chain only: an expired certificate of a trusted CA, or one without the
/// clientAuth purpose, reaches the authorizer, which answers 401. A certificate of an unknown CA never gets past the
/// handshake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_and_wrong_purpose_certificates_are_refused_by_the_authorizer_not_the_handshake() {
    let s = start(Mode::Embedded, "leafchecks", |_| {}).await;
    let ca = dev_ca(&s);
    let orders = brokerctl::devstack::CLIENTS[0].san_uri.unwrap();
    let now = std::time::SystemTime::now();
    let day = Duration::from_secs(86_400);
    let expired = ca.issue_client().cn("order-processing").san_uri(orders).validity(now - 30 * day, now - day);
    let server_purpose = ca.issue_client().cn("order-processing").san_uri(orders).client_auth(false);
    for (n, (what, cert)) in
        [("expired", expired.build().unwrap()), ("serverAuth only", server_purpose.build().unwrap())]
            .into_iter()
            .enumerate()
    {
        let (st, body) = token_request(&client_with(&s, &cert), &s.mtls_url(), None, None).await;
        assert_eq!((st, body["error"].as_str()), (401, Some("invalid_client")), "{what}: {body}");
        assert_eq!(s.stats().authorizer_calls.load(Ordering::Relaxed), n as u64 + 1, "{what}: the authorizer decided");
        assert_eq!(s.stats().broker_calls.load(Ordering::Relaxed), 0);
    }
    let lookalike = ca.lookalike().unwrap().issue_client().cn("order-processing").san_uri(orders).build().unwrap();
    let r = client_with(&s, &lookalike)
        .post(format!("{}/oauth2/token", s.mtls_url()))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await;
    assert!(r.is_err(), "a certificate of an unknown CA got through the handshake: {r:?}");
    assert_eq!(s.stats().requests.load(Ordering::Relaxed), 2);
}

/// The broker runs with its function's deadline, as in Lambda: with Cognito hanging, it gives up before its timeout
/// and answers itself, instead of being cut off by the gateway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_answers_within_its_functions_deadline() {
    let s = start(Mode::Embedded, "deadline", |o| o.gateway.broker_timeout = Duration::from_secs(3)).await;
    s.standin().unwrap().faults().set_delay(Duration::from_secs(8));
    let started = std::time::Instant::now();
    let (st, body) = token_request(&client(&s, Some("order-processing")), &s.mtls_url(), None, None).await;
    let took = started.elapsed();
    // Without a deadline the broker would give Cognito two attempts of UPSTREAM_TIMEOUT_MS (3 s) each.
    assert!(took < Duration::from_millis(3500), "the broker ran past its deadline: {took:?} ({st} {body})");
    assert_ne!(st, 502, "the gateway cut the broker off: {body}");
    assert!(st >= 500 && body["error"].is_string(), "{st} {body}");
    assert_ne!(body["error_description"], "the request could not be processed", "the gateway's answer: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_plan_keys_and_quotas_apply_after_the_authorizer() {
    let s = start(Mode::Embedded, "plan", |o| {
        o.gateway.require_usage_plan_key = true;
        o.gateway.usage_plan_daily_quota = 2;
    })
    .await;
    let c = client(&s, Some("order-processing"));
    assert_eq!(token_request(&c, &s.mtls_url(), None, None).await.0, 200);
    assert_eq!(token_request(&c, &s.mtls_url(), None, None).await.0, 200);
    let resp = c
        .post(format!("{}/oauth2/token", s.mtls_url()))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 429);
    assert_eq!(resp.headers()["retry-after"], "3600");
    assert_eq!(s.stats().broker_calls.load(Ordering::Relaxed), 2, "the broker ran past the usage-plan quota");
    // Another key has its own quota.
    assert_eq!(token_request(&client(&s, Some("reporting")), &s.mtls_url(), None, None).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_paths_get_the_gateways_404_and_the_stack_prints_curl_commands() {
    let s = start(Mode::Embedded, "misc", |_| {}).await;
    let c = client(&s, Some("order-processing"));
    let r = c.get(format!("{}/oauth2/token", s.mtls_url())).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 404);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_request");
    let text = s.curl_commands();
    for needle in ["order-processing.pem", "reporting.key", "stranger.pem", "token.jwt", "/customers", &s.mtls_url()] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
}

/// The gateway responses compiled into the local stack are the template's, byte for byte.
#[test]
fn gateway_responses_match_infra_template() {
    use brokerctl::devstack::gateway::responses;
    let template = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/template.yaml")).unwrap();
    let body_of = |name: &str| -> String {
        let start = template.find(&format!("          {name}:\n")).unwrap_or_else(|| panic!("{name} not in template"));
        let rest = &template[start..];
        let line = rest.lines().find(|l| l.trim_start().starts_with("application/json:")).unwrap();
        let v = line.trim_start().trim_start_matches("application/json:").trim();
        v.trim_matches('\'').to_owned()
    };
    assert_eq!(body_of("UNAUTHORIZED"), responses::UNAUTHORIZED);
    assert_eq!(body_of("ACCESS_DENIED"), responses::ACCESS_DENIED);
    assert_eq!(body_of("INVALID_API_KEY"), responses::ACCESS_DENIED);
    assert_eq!(body_of("THROTTLED"), responses::THROTTLED);
    assert_eq!(body_of("QUOTA_EXCEEDED"), responses::QUOTA_EXCEEDED);
    assert_eq!(body_of("MISSING_AUTHENTICATION_TOKEN"), responses::MISSING_AUTHENTICATION_TOKEN);
    assert_eq!(body_of("REQUEST_TOO_LARGE"), responses::REQUEST_TOO_LARGE);
    assert_eq!(body_of("DEFAULT_5XX"), responses::DEFAULT_5XX);
    assert_eq!(body_of("WAF_FILTERED"), responses::WAF_FILTERED);
    assert!(template.contains("authorizerResultTtlInSeconds: 0"), "the template's gateway cache setting changed");
}

/// The local gateway's defaults are the template's parameter defaults, stage by stage: the mTLS domain's stage and
/// the partner domain's own stage each with their throttle, the usage plan, and the partner stage's WAF rule (off
/// unless `PartnerWafEnabled`, with the template's limit and evaluation window).
#[test]
fn the_local_stages_are_the_templates() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/template.yaml")).unwrap();
    let doc: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    let default = |param: &str| -> String {
        match &doc["Parameters"][param]["Default"] {
            serde_norway::Value::String(s) => s.clone(),
            serde_norway::Value::Number(n) => n.as_f64().unwrap_or(f64::NAN).to_string(),
            other => panic!("{param}: no usable default ({other:?})"),
        }
    };
    let d = brokerctl::devstack::GatewaySettings::default();
    for (param, value) in [
        ("StageName", d.stage.clone()),
        ("ThrottlingRateLimit", d.stage_rate.to_string()),
        ("ThrottlingBurstLimit", d.stage_burst.to_string()),
        ("PartnerStageName", d.partner_stage.clone()),
        ("PartnerThrottlingRateLimit", d.partner_rate.to_string()),
        ("PartnerThrottlingBurstLimit", d.partner_burst.to_string()),
        ("UsagePlanRateLimit", d.usage_plan_rate.to_string()),
        ("UsagePlanBurstLimit", d.usage_plan_burst.to_string()),
        ("UsagePlanDailyQuota", d.usage_plan_daily_quota.to_string()),
        ("PartnerWafEnabled", d.partner_ip_rate_limit.is_some().to_string()),
        ("PartnerWafRateLimit", IpRateLimit::TEMPLATE.limit.to_string()),
    ] {
        assert_eq!(default(param), value, "{param}");
    }
    // Each stage's throttle reads its own parameters (the parameters alone would not make two buckets).
    for setting in ["ThrottlingRateLimit", "ThrottlingBurstLimit"] {
        assert!(text.contains(&format!("{setting}: !Ref {setting}\n")), "the mTLS stage's {setting}");
        assert!(text.contains(&format!("{setting}: !Ref Partner{setting}\n")), "the partner stage's {setting}");
    }
    let window =
        text.lines().find_map(|l| l.trim().strip_prefix("EvaluationWindowSec:")).expect("the WAF rule's window");
    assert_eq!(window.trim(), IpRateLimit::TEMPLATE.window.as_secs().to_string());
    assert_eq!(d.authorizer_cache_ttl, Duration::ZERO);
}

/// The local gateway cuts each function where Lambda and API Gateway would with the template: the functions'
/// `Timeout` (their Lambda deadline) and the integration's `timeoutInMillis`.
#[test]
fn the_local_stack_times_out_the_functions_as_the_template_does() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/template.yaml")).unwrap();
    let doc: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    let timeout = |function: &str| doc["Resources"][function]["Properties"]["Timeout"].as_u64().unwrap();
    let integration = doc["Resources"]["TokenApi"]["Properties"]["DefinitionBody"]["paths"]["/oauth2/token"]["post"]
        ["x-amazon-apigateway-integration"]["timeoutInMillis"]
        .as_u64()
        .unwrap();
    let d = brokerctl::devstack::GatewaySettings::default();
    assert_eq!(d.authorizer_timeout, Duration::from_secs(timeout("AuthorizerFunction")));
    assert_eq!(d.broker_timeout, Duration::from_secs(timeout("BrokerFunction")));
    assert_eq!(d.integration_timeout, Duration::from_millis(integration));
}

/// The `Environment` block of `function` in the template: literal values as given, `!Ref`/`!If` values as `None`
/// (the deployment parameter decides them).
fn template_env(function: &str) -> Vec<(String, Option<String>)> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/template.yaml")).unwrap();
    let doc: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    let vars = &doc["Resources"][function]["Properties"]["Environment"]["Variables"];
    let map = vars.as_mapping().unwrap_or_else(|| panic!("{function} has no Environment.Variables"));
    map.iter()
        .map(|(k, v)| {
            let literal = match v {
                serde_norway::Value::String(s) => Some(s.clone()),
                _ => None,
            };
            (k.as_str().unwrap().to_owned(), literal)
        })
        .collect()
}

/// The local stack's configuration of each function is the deployed one: every variable the template sets to a
/// literal is read to the same setting, and the rest are the functions' defaults, as in the template. (The stack once
/// served stale credentials for 15 minutes where the Lambda allows an hour.)
#[test]
fn the_local_stack_configures_both_functions_as_the_template_does() {
    let opts = DevOptions::default();
    let policy = std::path::Path::new("/dev-state/policy.yaml");
    for (function, stack_env) in [
        ("AuthorizerFunction", brokerctl::devstack::authorizer_env(&opts, policy)),
        ("BrokerFunction", brokerctl::devstack::broker_env(&opts, policy)),
    ] {
        // The template's literals, with the stack's values where the template defers to a parameter.
        let mut deployed: Vec<(String, String)> = Vec::new();
        for (var, literal) in template_env(function) {
            match literal {
                Some(v) => {
                    if let Some((_, mine)) = stack_env.iter().find(|(k, _)| *k == var) {
                        assert_eq!(mine, &v, "{function}: {var} differs from the template");
                    }
                    deployed.push((var, v));
                }
                None => {
                    if let Some((_, mine)) = stack_env.iter().find(|(k, _)| *k == var) {
                        deployed.push((var, mine.clone()));
                    }
                }
            }
        }
        for (var, _) in &stack_env {
            assert!(deployed.iter().any(|(k, _)| k == var), "{function}: the stack sets {var}, the template does not");
        }
        let stack = tb_shared::env::Env::from_pairs(stack_env.clone());
        let template = tb_shared::env::Env::from_pairs(deployed);
        let (a, b) = if function == "BrokerFunction" {
            (
                format!("{:?}", tb_broker::Config::read(&stack).unwrap()),
                format!("{:?}", tb_broker::Config::read(&template).unwrap()),
            )
        } else {
            (
                format!("{:?}", tb_authorizer::Config::read(&stack).unwrap()),
                format!("{:?}", tb_authorizer::Config::read(&template).unwrap()),
            )
        };
        assert_eq!(a, b, "{function}: the local stack's configuration differs from the deployed one");
    }
    let broker =
        tb_broker::Config::read(&tb_shared::env::Env::from_pairs(brokerctl::devstack::broker_env(&opts, policy)))
            .unwrap();
    assert_eq!(broker.credentials_cache.max_stale, Duration::from_secs(3600));
    // The template passes each function its stack's name (the Stack dimension of every metric); so does the stack.
    for function in ["AuthorizerFunction", "BrokerFunction"] {
        assert!(
            template_env(function).iter().any(|(k, _)| k == "STACK_NAME"),
            "{function}: STACK_NAME in the template"
        );
    }
    assert_eq!(broker.stack_name, brokerctl::devstack::DEV_STACK_NAME);
    let authorizer = tb_authorizer::Config::read(&tb_shared::env::Env::from_pairs(
        brokerctl::devstack::authorizer_env(&opts, policy),
    ))
    .unwrap();
    assert_eq!(authorizer.stack_name, brokerctl::devstack::DEV_STACK_NAME);
}

/// Every metric the template's alarms and dashboards name (its `Mappings.Emf.Metric` table) is one the functions
/// emit, under the same name; `GatewayThrottles` is the one the template derives from access logs itself.
#[test]
fn every_metric_the_template_names_is_emitted_by_a_function() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/template.yaml")).unwrap();
    let doc: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    let metrics = doc["Mappings"]["Emf"]["Metric"].as_mapping().expect("Mappings.Emf.Metric");
    assert!(metrics.len() >= 5, "the mapping is unexpectedly small");
    for (key, value) in metrics {
        let name = value.as_str().unwrap();
        if key.as_str() == Some("GatewayThrottles") {
            assert!(text.contains("GatewayThrottlesMetricFilter"), "GatewayThrottles needs its metric filter");
            continue;
        }
        let emitted = tb_authorizer::metric_names::ALL.contains(&name) || tb_broker::metric_names::ALL.contains(&name);
        assert!(emitted, "the template names metric {name}, which no function emits");
    }
    let dims = &doc["Mappings"]["Emf"]["Dimension"];
    assert_eq!(dims["Authorizer"].as_str(), Some(tb_authorizer::METRICS_SERVICE));
    assert_eq!(dims["Broker"].as_str(), Some(tb_broker::METRICS_SERVICE));
}

/// The test helpers create the quota table with the broker's own key and TTL attribute names.
#[test]
fn the_test_quota_table_uses_the_brokers_attribute_names() {
    assert_eq!(tb_devkit::moto::QUOTA_KEY_ATTR, tb_broker::quota_table::KEY_ATTR);
    assert_eq!(tb_devkit::moto::QUOTA_TTL_ATTR, tb_broker::quota_table::TTL_ATTR);
}
