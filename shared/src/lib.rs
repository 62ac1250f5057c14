//! What both Lambdas must agree on, and the small pieces of plumbing they share.
//!
//! The contract between the two functions:
//! - [`policy`]: the policy document both load (callers, identities, scopes, quotas, partner issuers);
//! - [`context`]: the caller context the authorizer writes and the broker reads;
//! - [`ids`]: identifiers parsed once at the boundary (`CallerId`, `Scope`, `ScopeSet`).
//!
//! Shared plumbing, so the two functions cannot drift apart in how they do it:
//! - [`env`]: one reader of the environment (same rules for empty values, durations, secrets, required paths);
//! - [`clock`]: wall-clock time as an injectable dependency;
//! - [`telemetry`]: JSON logs and CloudWatch EMF metrics to injectable writers, caller-id hashing;
//! - [`runtime`]: reporting an init failure to the Lambda Runtime API;
//! - [`aws`]: SDK timeouts from a budget, SDK errors described without request contents;
//! - [`http`]: size-capped reads of bodies from servers we do not control;
//! - [`sync`]: mutex locking that survives a poisoned lock.
//!
//! Adapters for a single function's outside systems live in that function's crate, so neither links the other's
//! SDKs.

#![warn(missing_docs, unreachable_pub)]

pub mod aws;
pub mod clock;
pub mod context;
pub mod env;
pub mod http;
pub mod ids;
pub mod policy;
pub mod runtime;
pub mod sync;
pub mod telemetry;
