//! Client metadata on the Cognito stand-in: `aws_client_metadata` on `/oauth2/token`, `ClientMetadata` on
//! `GetClientToken`, and what the pre-token-generation trigger makes of it.

mod common;
use common::*;

fn metadata_form(metadata: &str) -> String {
    form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "client_credentials")
        .append_pair("aws_client_metadata", metadata)
        .finish()
}

#[tokio::test]
async fn malformed_client_metadata_is_an_invalid_request() {
    let s = start().await;
    for bad in ["", "not json", "[]", r#"{"callerId":7}"#, r#"{"a":{"b":"c"}}"#, r#"{"a":"x","a":"y"}"#] {
        let resp = raw_request(&s, Some((ORDER_ID, ORDER_SECRET)), &metadata_form(bad)).await;
        expect_error(resp, StatusCode::BAD_REQUEST, "invalid_request").await;
    }
    assert_eq!(s.tokens_issued(), 0);
    s.shutdown().await;
}

#[tokio::test]
async fn without_a_trigger_client_metadata_is_ignored() {
    let s = start().await;
    let resp =
        raw_request(&s, Some((ORDER_ID, ORDER_SECRET)), &metadata_form(r#"{"callerId":"anyone","x":"y"}"#)).await;
    let (status, body) = status_and_json(resp).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let claims = s.verify_access_token(body["access_token"].as_str().unwrap()).unwrap();
    assert!(claims.extra.is_empty(), "{:?}", claims.extra);
    assert_eq!(claims.client_id, ORDER_ID);

    let sdk = cognito_sdk(&s).await;
    s.upsert_client(
        StandinClient::new(M2M_ID, M2M_SECRET, &["customer-api/read"])
            .flow(tb_devkit::cognito::ClientFlow::ClientTokenAuth),
    );
    let out = sdk
        .get_client_token()
        .client_id(M2M_ID)
        .secret(M2M_SECRET)
        .client_metadata("callerId", "anyone")
        .send()
        .await
        .unwrap();
    let token = out.client_authentication_result().and_then(|r| r.access_token()).unwrap();
    assert!(s.verify_access_token(token).unwrap().extra.is_empty());
    s.shutdown().await;
}
