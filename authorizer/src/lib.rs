//! The REQUEST authorizer Lambda: works out who is calling, from an mTLS client certificate or a partner JWT, and
//! answers API Gateway with an Allow carrying the caller context, an explicit Deny, or `Unauthorized`.
//!
//! `main.rs` only builds an [`handler::App`] once ([`setup::build_app`]) and hands events to [`handler::handle`].

pub mod config;
pub mod decision;
pub mod handler;
pub mod jwt;
pub mod mtls;
pub mod response;
pub mod setup;
