//! brokerctl: token-broker's operator and developer tooling.
//!
//! - [`policy`]: `policy check` (the functions' own loader) and `policy explain` (the authorizer's own decision).
//! - [`truststore`]: `truststore check` (with `--crls`, the CRL bundle against the CAs) and `truststore diff` for
//!   the mTLS CA bundle.
//! - [`publish`]: `truststore publish` of the bundle and the CRL bundle to versioned S3 objects and of the custom
//!   domain's pinned version, refusing what would turn callers into 401s.
//! - [`quota`]: `quota show` and `quota reset`, a caller's counters in the DynamoDB quota table.
//! - [`devstack`]: `brokerctl dev`, the whole chain on one machine; end-to-end tests start it in-process. Built with
//!   the default `dev` feature only, because it links the development stand-ins of `tb_devkit`: an operator build
//!   (`cargo build --release -p brokerctl --no-default-features`) has the policy and truststore commands alone.
//! - [`secret`]: `secret put`, the app-client credentials parameter in SSM, checked with the broker's own parser.
//! - [`cognito`]: `cognito rotate-secret`, the resumable rotation of an app client's secret.
//! - [`context_key`]: `context-key init | add | promote | retire | show`, the context-MAC key set in SSM, edited only
//!   through the functions' own key-set rules.
//! - [`aws`]: the SDK configuration of the commands that talk to AWS (or an emulator).
//! - [`cli`]: one clap `Args` type per command with its `run`, answering an [`Exit`] code; the binary
//!   (`src/main.rs`) only parses, runs and exits, so every command is testable as a library call.

pub mod aws;
pub mod cli;
pub mod cognito;
pub mod context_key;
#[cfg(feature = "dev")]
pub mod devstack;
pub mod exit;
pub mod policy;
pub mod publish;
pub mod quota;
pub mod secret;
pub mod truststore;

pub use exit::Exit;
