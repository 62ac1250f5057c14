//! The command line: one clap `Args` type per subcommand, each with `run`, which does the work through the library
//! and answers with an [`Exit`] code or a [`CliError`]. `main.rs` only parses, runs and exits.

mod cognito;
mod context_key;
#[cfg(feature = "dev")]
mod dev;
mod policy;
mod quota;
mod secret;
mod truststore;

use std::path::Path;

use clap::{Parser, Subcommand};

use crate::exit::Exit;

pub use cognito::{CognitoCommand, RotateSecretArgs};
pub use context_key::{AddArgs, ContextKeyCommand, InitArgs, KeyParameterArgs, ShowArgs, StepArgs};
#[cfg(feature = "dev")]
pub use dev::{DevAction, DevArgs};
pub use policy::{PolicyCheckArgs, PolicyCommand, PolicyExplainArgs};
pub use quota::{QuotaCommand, QuotaResetArgs, QuotaShowArgs, QuotaTableArgs};
pub use secret::{AwsArgs, ParameterArgs, SecretCommand, SecretPutArgs};
pub use truststore::{TruststoreCheckArgs, TruststoreCommand, TruststoreDiffArgs, TruststorePublishArgs};

/// Why a command could not do its work: the message for stderr and the exit code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CliError {
    pub exit: Exit,
    pub message: String,
}

impl CliError {
    /// A failure ([`Exit::Error`]).
    pub fn failed(message: impl Into<String>) -> Self {
        CliError { exit: Exit::Error, message: message.into() }
    }

    /// A command line that parsed but cannot be used ([`Exit::Usage`]).
    pub fn usage(message: impl Into<String>) -> Self {
        CliError { exit: Exit::Usage, message: message.into() }
    }
}

/// What a command answers: its exit code, or why it failed.
pub type CliResult = Result<Exit, CliError>;

/// Reads an input file; an unreadable one fails the command with `PATH: reason`.
fn read_input(path: &Path) -> Result<Vec<u8>, CliError> {
    std::fs::read(path).map_err(|e| CliError::failed(format!("{}: {e}", path.display())))
}

#[derive(Debug, Parser)]
#[command(name = "brokerctl", version, about = "token-broker operator and developer tooling")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate and explain the policy document.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Check, compare and publish the mTLS truststore (CA bundle).
    #[command(subcommand)]
    Truststore(TruststoreCommand),
    /// Show and reset a caller's grant quota counters in the DynamoDB quota table.
    #[command(subcommand)]
    Quota(QuotaCommand),
    /// Store an app client's credentials in SSM for the broker (read from standard input).
    #[command(subcommand)]
    Secret(SecretCommand),
    /// Cognito app-client secrets: rotate-secret.
    #[command(subcommand)]
    Cognito(CognitoCommand),
    /// The context-MAC key set in SSM that lets the broker trust only the authorizer's caller context: init, add,
    /// promote, retire, show.
    #[command(subcommand)]
    ContextKey(ContextKeyCommand),
    /// Run the whole chain locally: mTLS and partner listeners, API Gateway's behaviour, the authorizer and broker
    /// handlers, a Cognito stand-in and a sample resource server. NOT FOR PRODUCTION.
    #[cfg(feature = "dev")]
    Dev(DevArgs),
}

impl Cli {
    /// Runs the parsed command.
    pub async fn run(self) -> CliResult {
        match self.command {
            Command::Policy(c) => c.run().await,
            Command::Truststore(c) => c.run().await,
            Command::Quota(c) => c.run().await,
            Command::Secret(c) => c.run().await,
            Command::Cognito(c) => c.run().await,
            Command::ContextKey(c) => c.run().await,
            #[cfg(feature = "dev")]
            Command::Dev(c) => c.run().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
