//! NOT FOR PRODUCTION. Generators and stand-ins that the tests, benchmarks and the local stack use in place of the
//! real outside world: a test PKI (CAs, client certificates, CRLs) made at run time with rcgen, a partner JWT signer
//! with a JWKS server, and a stand-in for Cognito's `/oauth2/token`.
//!
//! Nothing here is linked into the Lambda binaries.

pub mod cognito;
/// The API Gateway proxy events the broker is handed, built in one place instead of one copy per test.
pub mod events;
/// Policy documents the tests share, and writing them to a temporary file for `POLICY_FILE`.
pub mod fixtures;
pub mod fleet_bench;
pub mod jwt;
pub mod lambda_bench;
/// moto's endpoint, SDK clients aimed at it and the resources tests create there (quota table, buckets, parameters).
pub mod moto;
pub mod pki;
pub mod runtime_api;
