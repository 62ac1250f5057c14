//! The REQUEST authorizer Lambda: works out who is calling, from an mTLS client certificate or a partner JWT, and
//! answers API Gateway with an Allow carrying the caller context, an explicit Deny, or `Unauthorized`.
//!
//! Read in this order:
//! - [`Config`] (the environment) and [`build`] with its [`Deps`] (the adapters): the one composition root that the
//!   Lambda's `main`, the local stack, `brokerctl policy explain`, the tests and the benchmarks share;
//! - [`handle`] / [`handle_request`]: one event in, the answer out, with its log line and metrics;
//! - [`Authorizer::decide`]: presented credentials to a [`Decision`], with the decision cache;
//! - the certificate path ([`CertVerifier`], [`identify`]) and the JWT path ([`JwtVerifier`]);
//! - `response`: a decision to the [`AuthorizerResponse`] API Gateway expects (or [`Unauthorized`]);
//! - the adapters for trust material ([`ObjectSource`]: S3, file, memory) and partner keys ([`JwksFetcher`]:
//!   HTTPS, memory).

#![warn(missing_docs, unreachable_pub)]

mod app;
mod config;
mod decision;
mod handler;
mod jwt;
mod metrics;
mod mtls;
mod response;
mod sources;

pub use app::{build, App, Deps, InitError, Trust, TrustSources, SSM_OPERATION_TIMEOUT};
pub use config::{Config, ObjectLocation};
pub use decision::{
    Allow, Authorizer, Decision, DecisionCacheConfig, DecisionInfo, Deny, DenyReason, Presented, UnauthorizedReason,
};
pub use handler::{handle, handle_request};
pub use jwt::{JwtConfig, JwtError, JwtVerifier, VerifiedJwt};
pub use metrics::{
    issuer_dimension, names as metric_names, outage as outage_reasons, trust_object as trust_objects,
    unauthorized as unauthorized_reasons, ISSUER_DIMENSION, OBJECT_DIMENSION, REASON_DIMENSION,
    SERVICE as METRICS_SERVICE,
};
pub use mtls::{
    identify, load_crls, load_truststore, pem_fingerprint, CertError, CertVerifier, CrlSummary, IdentifyError,
    MtlsConfig, MtlsError, TruststoreSummary, VerifiedCert, MAX_CLIENT_CERT_PEM_BYTES,
};
pub use response::{AuthorizerResponse, PolicyDocument, Statement, Unauthorized};
pub use sources::{
    s3_client, Fetched, FileObjectSource, HttpJwksFetcher, JwksFetcher, JwksFetcherConfig, MemoryJwksFetcher,
    MemoryObjectSource, ObjectSource, S3ObjectSource, SourceError, S3_OPERATION_TIMEOUT,
};
