//! The AWS SDK configuration every brokerctl command that talks to AWS uses (`truststore publish`, `dev
//! --aws-endpoint`): the standard credential and region chain, or an AWS-compatible endpoint such as an emulator.

/// Loads the SDK configuration, pointed at `endpoint` when given.
pub async fn sdk_config(endpoint: Option<&str>) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(e) = endpoint {
        // An emulator serves every region; without one configured the SDK would refuse to sign at all.
        let region = aws_config::meta::region::RegionProviderChain::default_provider().or_else("us-east-1");
        loader = loader.endpoint_url(e).region(region);
    }
    loader.load().await
}

/// An S3 client; path-style addressing when an endpoint is given (emulators do not serve bucket subdomains).
pub fn s3_client(sdk: &aws_config::SdkConfig, endpoint: Option<&str>) -> aws_sdk_s3::Client {
    let mut b = aws_sdk_s3::config::Builder::from(sdk);
    if endpoint.is_some() {
        b = b.force_path_style(true);
    }
    aws_sdk_s3::Client::from_conf(b.build())
}

/// [`sdk_config`] in `region` when given (else the SDK's chain, or us-east-1 with an endpoint): the commands that
/// write SSM and Cognito take `--region` so an operator names the deployment's region explicitly.
pub async fn sdk_config_in(endpoint: Option<&str>, region: Option<&str>) -> aws_config::SdkConfig {
    let Some(r) = region else { return sdk_config(endpoint).await };
    let mut loader =
        aws_config::defaults(aws_config::BehaviorVersion::latest()).region(aws_config::Region::new(r.to_owned()));
    if let Some(e) = endpoint {
        loader = loader.endpoint_url(e);
    }
    loader.load().await
}
