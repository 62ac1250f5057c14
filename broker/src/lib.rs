//! The broker Lambda: turns an authorised `POST /oauth2/token` into a Cognito client-credentials grant under the
//! caller's policy, quotas and credentials, and answers with a token response that leaks nothing.
//!
//! The handler takes every outside system as a trait ([`quota::QuotaStore`], [`credentials::CredentialSource`]
//! behind [`credential_refresh::CredentialProvider`]) or as a value built once per cold start ([`upstream::Upstream`],
//! [`reuse::TokenReuse`]), so the same code runs against AWS, against moto, and against in-memory stores.

pub mod bootstrap;
pub mod config;
pub mod credential_refresh;
pub mod credentials;
pub mod error;
pub mod handler;
pub mod metrics;
pub mod quota;
pub mod request;
pub mod response;
pub mod reuse;
pub mod upstream;

pub use handler::{handle, Broker};
