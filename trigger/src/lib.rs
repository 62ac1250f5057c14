//! Cognito's pre-token-generation trigger (event version V3_0): writes the broker's verified caller claims into the
//! access token of a client-credentials grant.
//!
//! The broker sends the caller it established as client metadata with every token request, signed with the context
//! key set ([`tb_shared::context::claims`]). Cognito hands that metadata to this trigger unchecked; the trigger
//! verifies the MAC against the app client named in the event and writes `{prefix}callerId`, `{prefix}authMethod`,
//! `{prefix}credentialFingerprint`, `{prefix}policyVersion` and, for a certificate-bound token, RFC 8705's
//! `cnf.x5t#S256`. Metadata that is missing or does not verify fails the token: a token request made around the
//! broker with an app client's secret gets no token at all rather than one without (or with forged) caller claims.
//! Tokens of user sign-in flows pass through unchanged.

#![warn(missing_docs, unreachable_pub)]

mod app;
mod config;
mod customize;
pub mod event;
mod handler;
pub mod metrics;
mod prefix;

pub use app::{build, App, Deps, InitError};
pub use config::{Config, CLAIM_PREFIX};
pub use customize::{
    customize, customize_traced, needs_keys, token_claims, Customized, Refusal, CNF_CLAIM, CNF_X5T_S256,
};
pub use handler::{handle, REFUSED_ERROR_TYPE};
pub use prefix::{
    is_reserved_claim, ClaimPrefix, PrefixError, CLAIM_SUFFIXES, DEFAULT_PREFIX, MAX_PREFIX_LEN, RESERVED_CLAIMS,
};
