//! `brokerctl context-key init | add | promote | retire | show`.

use std::time::{Duration, SystemTime};

use clap::{Args, Subcommand};

use super::secret::AwsArgs;
use super::{CliError, CliResult};
use crate::context_key::{self, ContextKeyError, KeyStore, Stored};
use crate::exit::Exit;

/// Shown after every command that changed the set: where the next step is explained.
const RUNBOOK: &str = "docs/runbooks/rotate-context-key.md";

#[derive(Debug, Subcommand)]
pub enum ContextKeyCommand {
    /// Create the context-key parameter with one new random key, which signs. Run once per stack, before the first
    /// deploy (CloudFormation cannot create a SecureString); refused when the parameter exists.
    ///
    /// The authorizer signs every caller context with the signing key and the broker accepts a context only when
    /// that MAC verifies, so a principal that invokes the broker directly cannot forge a caller. Give --kms-key-id
    /// the template's SsmKmsKeyArn: both functions may decrypt with that key only. Key bytes come from the operating
    /// system's random generator and are never printed; only key ids are.
    ///
    /// Exit codes: 0 created and read back; 2 refused or failed; 64 bad command line.
    Init(InitArgs),
    /// Rotation step 1: add a new random key beside the signing one. Both functions accept it at once; nothing
    /// signs with it yet. Then wait until every instance has loaded it (CONTEXT_KEYS_TTL_SECONDS) and `promote` it.
    ///
    /// Exit codes: 0 added and read back; 2 refused (two keys already, a taken id) or failed; 64 bad command line.
    Add(AddArgs),
    /// Rotation step 2: make --key-id the signing key. Refused until --settle has passed since the key set last
    /// changed, so every broker accepts the key before any authorizer signs with it.
    ///
    /// Exit codes: 0 switched and read back; 2 refused or failed; 64 bad command line.
    Promote(StepArgs),
    /// Rotation step 3: remove --key-id, which must not be the signing key. Refused until --settle has passed since
    /// the key set last changed, so no authorizer still signs with it and no context signed with it is still valid.
    ///
    /// Exit codes: 0 removed and read back; 2 refused or failed; 64 bad command line.
    Retire(StepArgs),
    /// List the key ids of the set and which one signs, with the parameter's version, KMS key and last change.
    /// Never prints key bytes.
    ///
    /// Exit codes: 0 shown; 2 missing, invalid or unreadable; 64 bad command line.
    Show(ShowArgs),
}

impl ContextKeyCommand {
    /// Runs the subcommand.
    pub async fn run(self) -> CliResult {
        match self {
            ContextKeyCommand::Init(a) => a.run().await,
            ContextKeyCommand::Add(a) => a.run().await,
            ContextKeyCommand::Promote(a) => a.run(Step::Promote).await,
            ContextKeyCommand::Retire(a) => a.run(Step::Retire).await,
            ContextKeyCommand::Show(a) => a.run().await,
        }
    }
}

/// The parameter and where SSM is.
#[derive(Debug, Clone, Args)]
pub struct KeyParameterArgs {
    /// The key-set parameter: the template's ContextKeyParameterName (the functions' CONTEXT_KEY_PARAMETER), e.g.
    /// /token-broker/context-key.
    #[arg(long, value_name = "PARAM")]
    pub name: String,
    #[command(flatten)]
    pub aws: AwsArgs,
}

impl KeyParameterArgs {
    async fn store(&self) -> Result<KeyStore, CliError> {
        let sdk = crate::aws::sdk_config_in(self.aws.endpoint.as_deref(), self.aws.region.as_deref()).await;
        KeyStore::new(aws_sdk_ssm::Client::new(&sdk), &self.name).map_err(|e| CliError::usage(e.to_string()))
    }
}

#[derive(Debug, Args)]
pub struct InitArgs {
    #[command(flatten)]
    pub parameter: KeyParameterArgs,
    /// KMS key (id, ARN or alias) of the SecureString: the template's SsmKmsKeyArn. Without it SSM's default key
    /// is used, which the functions' roles cannot decrypt with.
    #[arg(long, value_name = "KEY")]
    pub kms_key_id: Option<String>,
    /// The new key's id (1-64 of A-Z a-z 0-9 . _ -); default ctx-YYYYMMDD-<8 random hex digits>.
    #[arg(long, value_name = "ID")]
    pub key_id: Option<String>,
}

impl InitArgs {
    pub async fn run(self) -> CliResult {
        let store = self.parameter.store().await?;
        let id = key_id(self.key_id)?;
        let keys = context_key::initial(&id).map_err(refused)?;
        let version = store.create(&keys, self.kms_key_id.as_deref()).await.map_err(failed)?;
        println!(
            "created {} version {version} (SecureString, KMS key {}):",
            store.name(),
            self.kms_key_id.as_deref().unwrap_or("SSM's default")
        );
        print!("{}", context_key::describe(&keys));
        read_back(&store, &keys).await?;
        Ok(Exit::Ok)
    }
}

#[derive(Debug, Args)]
pub struct AddArgs {
    #[command(flatten)]
    pub parameter: KeyParameterArgs,
    /// The new key's id (1-64 of A-Z a-z 0-9 . _ -); default ctx-YYYYMMDD-<8 random hex digits>.
    #[arg(long, value_name = "ID")]
    pub key_id: Option<String>,
    /// KMS key of the SecureString; default: the key it is encrypted with now.
    #[arg(long, value_name = "KEY")]
    pub kms_key_id: Option<String>,
}

impl AddArgs {
    pub async fn run(self) -> CliResult {
        let store = self.parameter.store().await?;
        let stored = store.read().await.map_err(failed)?;
        let id = key_id(self.key_id)?;
        let keys = context_key::added(&stored.keys, &id).map_err(refused)?;
        write(&store, &stored, &keys, self.kms_key_id.as_deref(), &format!("added key {id} (not signing)")).await?;
        println!(
            "next: once every instance has loaded it (CONTEXT_KEYS_TTL_SECONDS, 5 minutes by default), \
             `brokerctl context-key promote --name {} --key-id {id}` ({RUNBOOK})",
            store.name()
        );
        Ok(Exit::Ok)
    }
}

enum Step {
    Promote,
    Retire,
}

#[derive(Debug, Args)]
pub struct StepArgs {
    #[command(flatten)]
    pub parameter: KeyParameterArgs,
    /// The key to promote or retire.
    #[arg(long, value_name = "ID")]
    pub key_id: String,
    /// Least time since the key set's last change: at least CONTEXT_KEYS_TTL_SECONDS (and, for retire, plus
    /// CONTEXT_MAC_TTL_SECONDS) with a margin. 0s skips the check (an emergency; see the runbook).
    #[arg(long, value_name = "DURATION", default_value = context_key::DEFAULT_SETTLE_ARG, value_parser = humantime::parse_duration)]
    pub settle: Duration,
    /// KMS key of the SecureString; default: the key it is encrypted with now.
    #[arg(long, value_name = "KEY")]
    pub kms_key_id: Option<String>,
}

impl StepArgs {
    async fn run(self, step: Step) -> CliResult {
        let store = self.parameter.store().await?;
        let stored = store.read().await.map_err(failed)?;
        let (verb, edit): (&str, fn(&_, &str) -> Result<_, ContextKeyError>) = match step {
            Step::Promote => ("promote", context_key::promoted),
            Step::Retire => ("retire", context_key::retired),
        };
        // The edit's own refusals first (unknown key, signing key): they hold whatever the wait.
        let keys = edit(&stored.keys, &self.key_id).map_err(refused)?;
        context_key::check_settled(&stored, self.settle, SystemTime::now(), verb).map_err(refused)?;
        let done = match step {
            Step::Promote => format!("key {} signs", self.key_id),
            Step::Retire => format!("retired key {}", self.key_id),
        };
        write(&store, &stored, &keys, self.kms_key_id.as_deref(), &done).await?;
        match step {
            Step::Promote => {
                let old: Vec<String> = stored.keys.ids().filter(|i| *i != self.key_id).map(str::to_owned).collect();
                if let Some(old) = old.first() {
                    println!(
                        "next: once no instance signs with {old} any more and every context it signed has expired \
                         (CONTEXT_KEYS_TTL_SECONDS + CONTEXT_MAC_TTL_SECONDS, 10 minutes by default), \
                         `brokerctl context-key retire --name {} --key-id {old}` ({RUNBOOK})",
                        store.name()
                    );
                }
            }
            Step::Retire => println!("rotation complete ({RUNBOOK})"),
        }
        Ok(Exit::Ok)
    }
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    #[command(flatten)]
    pub parameter: KeyParameterArgs,
}

impl ShowArgs {
    pub async fn run(self) -> CliResult {
        let store = self.parameter.store().await?;
        let stored = store.read().await.map_err(failed)?;
        println!("{}", header(&store, &stored));
        print!("{}", context_key::describe(&stored.keys));
        Ok(Exit::Ok)
    }
}

fn header(store: &KeyStore, stored: &Stored) -> String {
    let changed = stored
        .last_modified
        .map(|t| {
            let ago = SystemTime::now().duration_since(t).unwrap_or_default();
            format!(
                "{} ({} ago)",
                humantime::format_rfc3339_seconds(t),
                humantime::format_duration(Duration::from_secs(ago.as_secs()))
            )
        })
        .unwrap_or_else(|| "unknown".to_owned());
    format!(
        "{} version {} (SecureString, KMS key {}), last changed {changed}:",
        store.name(),
        stored.version,
        stored.kms_key_id.as_deref().unwrap_or("unknown")
    )
}

/// The given key id, or a new one.
fn key_id(given: Option<String>) -> Result<String, CliError> {
    match given {
        Some(id) => Ok(id),
        None => context_key::new_key_id(SystemTime::now()).map_err(failed),
    }
}

async fn write(
    store: &KeyStore,
    stored: &Stored,
    keys: &tb_shared::context::KeySet,
    kms_key_id: Option<&str>,
    done: &str,
) -> Result<(), CliError> {
    let version = store.replace(stored, keys, kms_key_id).await.map_err(failed)?;
    println!("{done}: {} version {version}:", store.name());
    print!("{}", context_key::describe(keys));
    read_back(store, keys).await
}

async fn read_back(store: &KeyStore, keys: &tb_shared::context::KeySet) -> Result<(), CliError> {
    store.verify(keys).await.map_err(failed)?;
    println!("read back through the functions' SSM key source: ok");
    Ok(())
}

fn failed(e: ContextKeyError) -> CliError {
    CliError::failed(e.to_string())
}

/// A refusal of the key-set rules or of a wait: nothing was written.
fn refused(e: ContextKeyError) -> CliError {
    CliError::failed(format!("{e}; nothing was written"))
}
