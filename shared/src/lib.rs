//! Code both Lambdas need to agree on: the policy document, the caller-context contract that carries the
//! authorizer's verdict to the broker, the narrow traits for outside systems, and telemetry.
//!
//! Anything that the authorizer writes and the broker reads lives here, so the two cannot drift apart.

pub mod context;
pub mod ids;
pub mod policy;
pub mod runtime;
pub mod sources;
pub mod telemetry;
