//! NOT FOR PRODUCTION. Generators and stand-ins that the tests, benchmarks and the local stack use in place of the
//! real outside world: a test PKI (CAs, client certificates, CRLs) made at run time with rcgen, a partner JWT signer
//! with a JWKS server, and a stand-in for Cognito's `/oauth2/token`.
//!
//! Nothing here is linked into the Lambda binaries.

pub mod cognito;
pub mod jwt;
pub mod lambda_bench;
pub mod pki;
pub mod runtime_api;
