//! The REQUEST authorizer Lambda: works out who is calling, from an mTLS client certificate or a partner JWT, and
//! answers API Gateway with an Allow carrying the caller context, an explicit Deny, or `Unauthorized`.

pub mod jwt;
pub mod mtls;
