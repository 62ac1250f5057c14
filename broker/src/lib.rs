//! The broker Lambda: turns an authorised `POST /oauth2/token` into a Cognito client-credentials grant under the
//! caller's policy, quotas and credentials, and answers with a token response that leaks nothing.
//!
//! The handler takes every outside system as a trait ([`quota::QuotaStore`], [`credentials::CredentialSource`], the
//! upstream token endpoint) so the same code runs against AWS, against moto, and against in-memory stores.

pub mod credentials;
pub mod quota;
