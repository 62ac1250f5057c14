//! `GetClientToken` on the Cognito stand-in, driven by the real AWS SDK the way the broker drives it: the token,
//! every documented error, the client flows, the fault switches and the counters shared with `/oauth2/token`.

mod common;
use common::*;

use aws_sdk_cognitoidentityprovider::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_cognitoidentityprovider::operation::get_client_token::{GetClientTokenError, GetClientTokenOutput};
use aws_sdk_cognitoidentityprovider::Client;

async fn start_pool() -> (CognitoStandin, Client) {
    let s = CognitoStandin::start(client_token_pool_config()).await.unwrap();
    let sdk = cognito_sdk(&s).await;
    (s, sdk)
}

async fn get_token(
    sdk: &Client,
    id: &str,
    secret: &str,
    scopes: Option<&[&str]>,
) -> Result<GetClientTokenOutput, SdkError<GetClientTokenError>> {
    let mut req = sdk.get_client_token().client_id(id).secret(secret);
    if let Some(scopes) = scopes {
        req = req.set_scopes(Some(scopes.iter().map(|s| (*s).to_owned()).collect()));
    }
    req.send().await
}

/// The service error's code and the HTTP status it came with.
fn code_and_status(err: SdkError<GetClientTokenError>) -> (String, u16) {
    let status = err.raw_response().map(|r| r.status().as_u16()).unwrap_or(0);
    let code = err.into_service_error().code().unwrap_or("<none>").to_owned();
    (code, status)
}

fn access_token(out: &GetClientTokenOutput) -> String {
    out.client_authentication_result().and_then(|r| r.access_token()).unwrap().to_owned()
}

#[tokio::test]
async fn issues_a_cognito_shaped_token_for_all_the_clients_scopes() {
    let (s, sdk) = start_pool().await;
    let out = get_token(&sdk, M2M_ID, M2M_SECRET, None).await.unwrap();
    let result = out.client_authentication_result().unwrap();
    assert_eq!(result.token_type(), Some("Bearer"));
    assert_eq!(result.expires_in(), 3600);
    let token = access_token(&out);

    let claims = s.verify_access_token(&token).unwrap();
    assert_eq!(claims.sub, M2M_ID);
    assert_eq!(claims.client_id, M2M_ID);
    assert_eq!(claims.token_use, "access");
    assert_eq!(claims.scopes(), ["customer-api/read", "customer-api/write"]);
    assert_eq!(claims.exp - claims.iat, 3600);
    // The same claim set as a token from /oauth2/token: no trigger ran, so nothing else.
    assert!(claims.extra.is_empty(), "{:?}", claims.extra);
    let payload = decode_part(&token, 1);
    let mut names: Vec<&str> = payload.as_object().unwrap().keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["auth_time", "client_id", "exp", "iat", "iss", "jti", "scope", "sub", "token_use", "version"]);

    assert_eq!(s.api_calls("GetClientToken"), 1);
    assert_eq!(s.token_requests(), 1);
    assert_eq!(s.token_requests_for(M2M_ID), 1);
    assert_eq!(s.tokens_issued(), 1);
    s.shutdown().await;
}

#[tokio::test]
async fn requested_scopes_are_granted_and_an_empty_list_means_all() {
    let (s, sdk) = start_pool().await;
    let out = get_token(&sdk, M2M_ID, M2M_SECRET, Some(&["customer-api/write", "customer-api/write"])).await.unwrap();
    assert_eq!(s.verify_access_token(&access_token(&out)).unwrap().scopes(), ["customer-api/write"]);

    let out = get_token(&sdk, M2M_ID, M2M_SECRET, Some(&[])).await.unwrap();
    assert_eq!(
        s.verify_access_token(&access_token(&out)).unwrap().scopes(),
        ["customer-api/read", "customer-api/write"]
    );
    s.shutdown().await;
}

#[tokio::test]
async fn the_token_lifetime_is_the_clients() {
    let mut cfg = StandinConfig::new(vec![StandinClient::new(M2M_ID, M2M_SECRET, &["a/b"])
        .flow(tb_devkit::cognito::ClientFlow::ClientTokenAuth)
        .token_validity(Duration::from_secs(300))]);
    cfg.issuer_path = "eu-west-1_abc".to_owned();
    let s = CognitoStandin::start(cfg).await.unwrap();
    let sdk = cognito_sdk(&s).await;
    let out = get_token(&sdk, M2M_ID, M2M_SECRET, None).await.unwrap();
    assert_eq!(out.client_authentication_result().unwrap().expires_in(), 300);
    let claims = s.verify_access_token(&access_token(&out)).unwrap();
    assert_eq!(claims.iss, format!("{}/eu-west-1_abc", s.base_url()));
    assert_eq!(claims.exp - claims.iat, 300);
    s.shutdown().await;
}

#[tokio::test]
async fn each_active_secret_is_accepted_and_a_deleted_one_is_not() {
    let (s, sdk) = start_pool().await;
    let added = sdk
        .add_user_pool_client_secret()
        .user_pool_id(s.pool_id())
        .client_id(M2M_ID)
        .send()
        .await
        .unwrap()
        .client_secret_descriptor()
        .cloned()
        .unwrap();
    let second = added.client_secret_value().unwrap().to_owned();
    get_token(&sdk, M2M_ID, M2M_SECRET, None).await.unwrap();
    get_token(&sdk, M2M_ID, &second, None).await.unwrap();

    let first_id = s.client_secret_ids(M2M_ID).unwrap()[0].clone();
    sdk.delete_user_pool_client_secret()
        .user_pool_id(s.pool_id())
        .client_id(M2M_ID)
        .client_secret_id(first_id)
        .send()
        .await
        .unwrap();
    let err = get_token(&sdk, M2M_ID, M2M_SECRET, None).await.unwrap_err();
    assert_eq!(code_and_status(err), ("NotAuthorizedException".to_owned(), 400));
    get_token(&sdk, M2M_ID, &second, None).await.unwrap();
    // Secret operations are not token requests.
    assert_eq!(s.token_requests(), 4);
    assert_eq!(s.tokens_issued(), 3);
    s.shutdown().await;
}

#[tokio::test]
async fn a_wrong_secret_is_not_authorized() {
    let (s, sdk) = start_pool().await;
    for secret in ["wrong-secret-value", "", &M2M_SECRET[..M2M_SECRET.len() - 1]] {
        let err = get_token(&sdk, M2M_ID, secret, None).await.unwrap_err();
        let service = err.into_service_error();
        assert!(service.is_not_authorized_exception(), "{service:?}");
    }
    // Another client's secret is a wrong secret too.
    let err = get_token(&sdk, M2M_ID, ORDER_SECRET, None).await.unwrap_err();
    assert_eq!(code_and_status(err), ("NotAuthorizedException".to_owned(), 400));
    assert_eq!(s.tokens_issued(), 0);
    assert_eq!(s.token_requests_for(M2M_ID), 4);
    s.shutdown().await;
}

#[tokio::test]
async fn an_unknown_client_is_not_found() {
    let (s, sdk) = start_pool().await;
    let err = get_token(&sdk, "nosuchclient000000000000001", M2M_SECRET, None).await.unwrap_err();
    let service = err.into_service_error();
    assert!(service.is_resource_not_found_exception(), "{service:?}");
    // Counted as a token request, but not per client: only registered ids are.
    assert_eq!(s.token_requests(), 1);
    assert_eq!(s.token_requests_for("nosuchclient000000000000001"), 0);
    s.shutdown().await;
}

#[tokio::test]
async fn a_scope_the_client_may_not_have_is_an_invalid_parameter() {
    let (s, sdk) = start_pool().await;
    for scopes in [
        &["customer-api/admin"][..],
        &["customer-api/read", "other/x"],
        &["customer-api/read customer-api/write"],
        &["bad\"scope"],
    ] {
        let err = get_token(&sdk, M2M_ID, M2M_SECRET, Some(scopes)).await.unwrap_err();
        let service = err.into_service_error();
        assert!(service.is_invalid_parameter_exception(), "{scopes:?}: {service:?}");
    }
    assert_eq!(s.tokens_issued(), 0);
    s.shutdown().await;
}

#[tokio::test]
async fn a_client_without_scopes_gets_no_token() {
    let s = CognitoStandin::start(StandinConfig::new(vec![
        StandinClient::new(M2M_ID, M2M_SECRET, &[]).flow(tb_devkit::cognito::ClientFlow::ClientTokenAuth)
    ]))
    .await
    .unwrap();
    let sdk = cognito_sdk(&s).await;
    let err = get_token(&sdk, M2M_ID, M2M_SECRET, None).await.unwrap_err();
    assert_eq!(code_and_status(err), ("InvalidParameterException".to_owned(), 400));
    s.shutdown().await;
}

#[tokio::test]
async fn each_flow_is_served_at_its_own_entry_point_only() {
    let (s, sdk) = start_pool().await;
    // An OAuth client-credentials client cannot use GetClientToken ...
    let err = get_token(&sdk, ORDER_ID, ORDER_SECRET, None).await.unwrap_err();
    let service = err.into_service_error();
    assert!(service.is_not_authorized_exception(), "{service:?}");
    // ... and a client-token client cannot use /oauth2/token, even with its right secret.
    expect_error(basic_request(&s, M2M_ID, M2M_SECRET, None).await, StatusCode::BAD_REQUEST, "unauthorized_client")
        .await;
    // Each still works at its own.
    assert_eq!(basic_request(&s, ORDER_ID, ORDER_SECRET, None).await.status(), StatusCode::OK);
    get_token(&sdk, M2M_ID, M2M_SECRET, None).await.unwrap();
    assert_eq!(s.token_requests(), 4);
    assert_eq!(s.tokens_issued(), 2);
    assert_eq!(s.api_calls("GetClientToken"), 2);
    s.shutdown().await;
}

#[tokio::test]
async fn a_malformed_request_is_an_invalid_parameter() {
    let (s, _sdk) = start_pool().await;
    let call = |body: &'static str| {
        http()
            .post(s.base_url())
            .header("x-amz-target", "AWSCognitoIdentityProviderService.GetClientToken")
            .header("content-type", "application/x-amz-json-1.1")
            .body(body)
            .send()
    };
    for body in [
        "{}",
        r#"{"Secret":"x"}"#,
        r#"{"ClientId":"","Secret":"x"}"#,
        r#"{"ClientId":"m2mclient000000000000000001","Secret":"x","ClientMetadata":{"a":1}}"#,
        r#"{"ClientId":"m2mclient000000000000000001","Secret":"x","Scopes":"customer-api/read"}"#,
        "not json",
    ] {
        let (status, answer) = status_and_json(call(body).await.unwrap()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(answer["__type"], "InvalidParameterException", "{body}: {answer}");
    }
    assert_eq!(s.tokens_issued(), 0);
    s.shutdown().await;
}

#[tokio::test]
async fn server_error_faults_are_internal_errors_with_the_faults_status() {
    let (s, sdk) = start_pool().await;
    s.faults().fail_next(1, 500);
    let err = get_token(&sdk, M2M_ID, M2M_SECRET, None).await.unwrap_err();
    assert_eq!(code_and_status(err), ("InternalErrorException".to_owned(), 500));
    s.faults().fail_next(1, 503);
    let err = get_token(&sdk, M2M_ID, M2M_SECRET, None).await.unwrap_err();
    assert_eq!(code_and_status(err), ("InternalErrorException".to_owned(), 503));
    get_token(&sdk, M2M_ID, M2M_SECRET, None).await.unwrap();
    assert_eq!(s.token_requests(), 3);
    assert_eq!(s.token_requests_for(M2M_ID), 3);
    assert_eq!(s.tokens_issued(), 1);
    s.shutdown().await;
}

#[tokio::test]
async fn throttling_is_too_many_requests_with_400_in_either_style() {
    let (s, sdk) = start_pool().await;
    for style in [ThrottleStyle::CognitoBadRequest, ThrottleStyle::TooManyRequests] {
        s.faults().throttle_next(1, style);
        let err = get_token(&sdk, M2M_ID, M2M_SECRET, None).await.unwrap_err();
        assert_eq!(code_and_status(err), ("TooManyRequestsException".to_owned(), 400), "{style:?}");
    }
    s.faults().throttle_all(ThrottleStyle::CognitoBadRequest);
    for _ in 0..3 {
        let service = get_token(&sdk, M2M_ID, M2M_SECRET, None).await.unwrap_err().into_service_error();
        assert!(service.is_too_many_requests_exception(), "{service:?}");
    }
    s.faults().clear();
    get_token(&sdk, M2M_ID, M2M_SECRET, None).await.unwrap();
    s.shutdown().await;
}

#[tokio::test]
async fn the_sdks_own_retries_get_past_one_server_error() {
    let (s, _) = start_pool().await;
    // The SDK's default (standard) retry policy, as the broker's client would have it unless it turns it off.
    let sdk = Client::new(&tb_devkit::moto::sdk_config_at(&s.base_url(), "us-east-1").await);
    s.faults().fail_next(1, 500);
    get_token(&sdk, M2M_ID, M2M_SECRET, None).await.unwrap();
    assert_eq!(s.token_requests(), 2);
    assert_eq!(s.tokens_issued(), 1);
    s.shutdown().await;
}

#[tokio::test]
async fn a_delay_holds_the_answer_past_the_callers_timeout() {
    use aws_sdk_cognitoidentityprovider::config::timeout::TimeoutConfig;
    let (s, _) = start_pool().await;
    let sdk_config = tb_devkit::moto::sdk_config_at(&s.base_url(), "us-east-1").await;
    let conf = aws_sdk_cognitoidentityprovider::config::Builder::from(&sdk_config)
        .retry_config(aws_sdk_cognitoidentityprovider::config::retry::RetryConfig::disabled())
        .timeout_config(TimeoutConfig::builder().operation_timeout(Duration::from_millis(300)).build())
        .build();
    let sdk = Client::from_conf(conf);
    s.faults().set_delay(Duration::from_secs(3));
    let err = get_token(&sdk, M2M_ID, M2M_SECRET, None).await.unwrap_err();
    assert!(matches!(err, SdkError::TimeoutError(_)), "{err:?}");
    s.faults().clear();
    get_token(&sdk, M2M_ID, M2M_SECRET, None).await.unwrap();
    s.shutdown().await;
}

#[tokio::test]
async fn both_entry_points_draw_on_the_same_fault_switches() {
    let (s, sdk) = start_pool().await;
    s.faults().fail_next(2, 502);
    // The first use goes to the token endpoint, in its own protocol ...
    expect_error(basic_request(&s, ORDER_ID, ORDER_SECRET, None).await, StatusCode::BAD_GATEWAY, "server_error").await;
    // ... the second to GetClientToken, in the API's.
    let err = get_token(&sdk, M2M_ID, M2M_SECRET, None).await.unwrap_err();
    assert_eq!(code_and_status(err), ("InternalErrorException".to_owned(), 502));
    // Spent: both work again.
    get_token(&sdk, M2M_ID, M2M_SECRET, None).await.unwrap();
    assert_eq!(basic_request(&s, ORDER_ID, ORDER_SECRET, None).await.status(), StatusCode::OK);
    assert_eq!((s.token_requests(), s.tokens_issued()), (4, 2));
    assert_eq!((s.token_requests_for(ORDER_ID), s.token_requests_for(M2M_ID)), (2, 2));
    s.shutdown().await;
}

#[tokio::test]
async fn secret_operations_are_not_faulted() {
    let (s, sdk) = start_pool().await;
    s.faults().fail_all(500);
    let listed = sdk.list_user_pool_client_secrets().user_pool_id(s.pool_id()).client_id(M2M_ID).send().await;
    assert_eq!(listed.unwrap().client_secrets().len(), 1);
    assert_eq!(s.token_requests(), 0);
    s.shutdown().await;
}
