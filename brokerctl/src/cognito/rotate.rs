//! `brokerctl cognito rotate-secret`: rotate one app client's secret with no moment at which the broker holds a
//! secret Cognito refuses.
//!
//! Cognito lets an app client hold two active secrets. The rotation, in order:
//! 1. list the client's secrets; the SSM parameter's Description records which one its value holds
//!    ([`crate::secret::description`]; a parameter written without that record is adopted when the client has only
//!    one secret), and prove the stored value gets a token before anything is changed;
//! 2. generate a new secret and stage it in the SecureString `{parameter}/rotation-pending` (never read by the
//!    broker, whose names have no `/`), then add it to the app client (`AddUserPoolClientSecret` with the value, so
//!    the value is already stored before Cognito knows it and an interruption cannot lose it);
//! 3. prove the staged secret gets a token, then write it to the broker's parameter together with its secret id in
//!    one `PutParameter`, and delete the staged copy;
//! 4. prove the parameter's new value gets a token, and wait until every broker's credential cache has turned over
//!    (counted from the parameter's LastModifiedDate, so a resumed run waits only what is left);
//! 5. delete the old secret.
//!
//! Every run reads the state (SSM's recorded id, Cognito's list, the staged copy) and plans from it, and re-plans
//! after every change, so a run interrupted anywhere continues where it stopped: it never adds a third secret, never
//! deletes the secret SSM holds, and refuses, changing nothing, whenever the state is not one it produced (two
//! secrets and neither recorded in SSM; a second secret whose value it does not hold).
//!
//! Every proving grant is a real token request. On a user pool that runs the project's pre-token-generation trigger,
//! one without the broker's signed caller claims is refused by the trigger; [`RotateOptions::claims`] signs them as
//! the broker does, and without it such a refusal stops the run with a message that says so.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use aws_sdk_cognitoidentityprovider::Client;
use secrecy::{ExposeSecret, SecretString};
use tb_broker::ClientCredentials;

use super::{
    add_secret, delete_secret, generate_secret, grant_within, list_secrets, CognitoError, Grant, ProvingClaims,
    SecretInfo,
};
use crate::secret::{self, ParameterInfo, PutOptions, SecretError};

/// The most plan-and-act rounds of one run; a full rotation takes six.
const MAX_ROUNDS: usize = 16;

/// What to rotate and how.
#[derive(Debug, Clone)]
pub struct RotateOptions {
    /// The user pool of the app client.
    pub user_pool_id: String,
    /// The broker's SSM parameter of the app client (`{prefix}/{cognito_client}`).
    pub parameter: String,
    /// KMS key of the SecureStrings written; `None` keeps the parameter's current key.
    pub kms_key_id: Option<String>,
    /// How long after the parameter is written the old secret must keep working: the broker's credential cache TTL
    /// plus a margin, or longer when SSM reads were failing (see `--help`).
    pub wait: Duration,
    /// How long a proving grant may keep being refused (a secret just added may take a moment to be accepted).
    pub verify_timeout: Duration,
    /// Caller claims for the proving grants, for a user pool whose pre-token-generation trigger refuses token
    /// requests without them (`--context-key-parameter`).
    pub claims: Option<ProvingClaims>,
    /// Print the plan and change nothing.
    pub dry_run: bool,
    /// Stop right after this change (tests of resumption; a hidden command-line flag).
    pub stop_after: Option<StopAfter>,
}

/// A change after which a run can be told to stop, as if interrupted there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StopAfter {
    /// The new secret is staged in SSM, not yet in Cognito.
    Stage,
    /// The new secret is added to the app client, not yet in the broker's parameter.
    Add,
    /// The broker's parameter holds the new secret; the old one is not deleted.
    Write,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotateOutcome {
    /// The old secret is deleted; the app client and SSM hold the new one.
    Rotated { old_secret_id: String, new_secret_id: String },
    /// `--dry-run`: the plan was printed.
    Planned,
    /// Stopped as asked by [`RotateOptions::stop_after`].
    Stopped(StopAfter),
}

/// Why a rotation stopped without finishing. Nothing here carries a secret.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    #[error(transparent)]
    Ssm(#[from] SecretError),
    #[error(transparent)]
    Cognito(#[from] CognitoError),
    /// The state is not one this command can continue from; nothing was changed by this run's last step.
    #[error("refusing: {0}")]
    Refused(String),
}

/// The name of the staged copy of a new secret.
pub fn pending_name(parameter: &str) -> String {
    format!("{parameter}/rotation-pending")
}

/// What a run found.
struct State {
    live: SecretString,
    creds: ClientCredentials,
    info: ParameterInfo,
    recorded: Option<String>,
    secrets: Vec<SecretInfo>,
    pending: Option<SecretString>,
    /// Whether the staged value gets a token; asked only when it decides the plan.
    pending_grant: Option<Grant>,
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    VerifyCurrent,
    Record { id: String },
    Stage { reuse: bool },
    Add,
    Write { new_id: Option<String> },
    DropPending,
    VerifyNew,
    Wait { remaining: Duration },
    Delete { old_id: String },
}

impl Action {
    /// Whether the step changes SSM or Cognito (the state is read again after it).
    fn changes(&self) -> bool {
        !matches!(self, Action::VerifyCurrent | Action::Stage { reuse: true } | Action::VerifyNew | Action::Wait { .. })
    }
}

fn secure_info(info: Option<ParameterInfo>, name: &str) -> Result<ParameterInfo, RotateError> {
    match info {
        Some(i) if i.secure => Ok(i),
        Some(_) => Err(RotateError::Refused(format!("{name} is not a SecureString; the broker refuses it as it is"))),
        None => Err(RotateError::Refused(format!("{name} has no metadata in SSM"))),
    }
}

async fn read_state(
    ssm: &aws_sdk_ssm::Client,
    cognito: &Client,
    http: &reqwest::Client,
    opts: &RotateOptions,
) -> Result<State, RotateError> {
    let name = &opts.parameter;
    let live = secret::get(ssm, name).await?.ok_or_else(|| {
        RotateError::Refused(format!(
            "{name} does not exist: store the app client's credentials first (brokerctl secret put)"
        ))
    })?;
    let info = secure_info(secret::info(ssm, name).await?, name)?;
    let creds = secret::validate(&live)
        .await
        .map_err(|e| RotateError::Refused(format!("{name}: {e}; fix it with brokerctl secret put first")))?;
    let recorded = info.description.as_deref().and_then(secret::recorded_secret_id);
    let secrets = list_secrets(cognito, &opts.user_pool_id, &creds.client_id).await?;
    let pending = secret::get(ssm, &pending_name(name)).await?;
    let mut state = State { live, creds, info, recorded, secrets, pending, pending_grant: None };
    let decides = state.secrets.len() == 2
        && state.recorded.as_ref().is_some_and(|r| state.secrets.iter().any(|s| &s.id == r))
        && state.pending.as_ref().is_some_and(|p| p.expose_secret() != state.live.expose_secret());
    if decides {
        let staged = state.pending.as_ref().map(secret::validate);
        state.pending_grant = Some(match staged {
            Some(f) => match f.await {
                Ok(c) => grant_within(http, &c, opts.claims.as_ref(), opts.verify_timeout).await,
                Err(e) => Grant::Failed(format!("the staged value is malformed: {e}")),
            },
            None => Grant::Failed("no staged value".into()),
        });
    }
    Ok(state)
}

/// The remaining steps from `state`, in order.
fn plan(state: &State, opts: &RotateOptions, now: SystemTime) -> Result<Vec<Action>, RotateError> {
    let name = &opts.parameter;
    let client = &state.creds.client_id;
    let staged = state.pending.is_some();
    let rest = |old: &str| {
        vec![
            Action::Stage { reuse: staged },
            Action::Add,
            Action::Write { new_id: None },
            Action::DropPending,
            Action::VerifyNew,
            Action::Wait { remaining: opts.wait },
            Action::Delete { old_id: old.to_owned() },
        ]
    };
    let since_write = state.info.last_modified.and_then(|t| now.duration_since(t).ok()).unwrap_or_default();
    let remaining = opts.wait.saturating_sub(since_write);
    let ids: Vec<&str> = state.secrets.iter().map(|s| s.id.as_str()).collect();
    match (state.recorded.as_deref(), state.secrets.as_slice()) {
        (_, []) => Err(RotateError::Refused(format!("app client {client} has no secret"))),
        (None, [only]) => {
            let mut p = vec![Action::VerifyCurrent, Action::Record { id: only.id.clone() }];
            p.extend(rest(&only.id));
            Ok(p)
        }
        (None, _) => Err(RotateError::Refused(format!(
            "app client {client} has secrets {} and {name} does not record which one it holds; delete the one the \
             broker does not use (aws cognito-idp delete-user-pool-client-secret), or write the credentials again \
             with brokerctl secret put --cognito-secret-id, then run this again",
            ids.join(", ")
        ))),
        (Some(l), s) if !s.iter().any(|x| x.id == l) => Err(RotateError::Refused(format!(
            "{name} records secret {l}, which app client {client} no longer has (it has {}): the broker's \
             credentials are probably refused; follow the emergency path of docs/runbooks/rotate-cognito-secret.md",
            ids.join(", ")
        ))),
        (Some(l), [_]) => {
            // Proved before anything changes, so a grant that cannot pass (a pool with the trigger and no claims, a
            // stored value that no longer works) stops the run before it stages or adds a secret.
            let mut p = vec![Action::VerifyCurrent];
            p.extend(rest(l));
            Ok(p)
        }
        (Some(l), [a, b]) => {
            let (current, other) = if a.id == l { (a, b) } else { (b, a) };
            let tail = |old: &str, wait: Duration| {
                vec![Action::VerifyNew, Action::Wait { remaining: wait }, Action::Delete { old_id: old.to_owned() }]
            };
            match (&state.pending, &state.pending_grant) {
                (Some(p), _) if p.expose_secret() == state.live.expose_secret() => {
                    let mut v = vec![Action::DropPending];
                    v.extend(tail(&other.id, remaining));
                    Ok(v)
                }
                (Some(_), Some(Grant::Issued)) => {
                    let mut v = vec![Action::Write { new_id: Some(other.id.clone()) }, Action::DropPending];
                    v.extend(tail(&current.id, opts.wait));
                    Ok(v)
                }
                (Some(_), Some(Grant::TriggerRefused(why))) => {
                    Err(RotateError::Refused(trigger_refusal(opts, &pending_name(name), why)))
                }
                (Some(_), Some(Grant::Failed(why))) => Err(RotateError::Refused(format!(
                    "cannot tell whether the staged secret in {} is secret {}: {why}",
                    pending_name(name),
                    other.id
                ))),
                (Some(_), _) => Err(RotateError::Refused(format!(
                    "app client {client} has a second secret {} and the staged value in {} is refused by the token \
                     endpoint; delete {} from the app client if nobody uses it, then run this again",
                    other.id,
                    pending_name(name),
                    other.id
                ))),
                (None, _) if other.created.is_some() && other.created < current.created => {
                    Ok(tail(&other.id, remaining))
                }
                (None, _) => Err(RotateError::Refused(format!(
                    "app client {client} has a second secret {} that is not in {name} and was not added by this \
                     command (its value is unknown); delete it from the app client if nobody uses it, then run this \
                     again",
                    other.id
                ))),
            }
        }
        (Some(_), _) => Err(RotateError::Refused(format!("app client {client} has more than two secrets"))),
    }
}

/// Why a proving grant of the credentials in `what` was refused by the pool's pre-token-generation trigger, and what
/// to do: pass the context key set when none was given, else check it is the trigger's.
fn trigger_refusal(opts: &RotateOptions, what: &str, why: &str) -> String {
    match &opts.claims {
        None => format!(
            "the user pool runs a pre-token-generation trigger that refused the token request proving the credentials \
             in {what} ({why}): it accepts only requests carrying the broker's signed caller claims. Run this again \
             with --context-key-parameter NAME (the context key set, the stack's ContextKeyParameterName) so the \
             proving requests carry them; nothing more was changed"
        ),
        Some(c) => format!(
            "the user pool's pre-token-generation trigger refused the token request proving the credentials in \
             {what} although it carried caller claims signed with the key set in {} ({why}): check that \
             --context-key-parameter names the parameter the trigger reads (its CONTEXT_KEY_PARAMETER), that the \
             trigger holds the current key set, and this machine's clock; nothing more was changed",
            c.parameter()
        ),
    }
}

/// How a proving grant is made, for the plan's lines.
fn proving(state: &State, opts: &RotateOptions) -> String {
    match &opts.claims {
        None => state.creds.upstream.to_string(),
        Some(c) => format!("{} with caller claims signed with the key set in {}", state.creds.upstream, c.parameter()),
    }
}

fn describe(a: &Action, state: &State, opts: &RotateOptions) -> String {
    let name = &opts.parameter;
    let pending = pending_name(name);
    let client = &state.creds.client_id;
    match a {
        Action::VerifyCurrent => {
            format!("check that the credentials in {name} get a token from {}", proving(state, opts))
        }
        Action::Record { id } => format!("record in {name}'s description that it holds secret {id} (value unchanged)"),
        Action::Stage { reuse: false } => format!("generate a new secret and stage it in {pending}"),
        Action::Stage { reuse: true } => format!("use the new secret staged in {pending}"),
        Action::Add => format!("add the staged secret to app client {client} in user pool {}", opts.user_pool_id),
        Action::Write { new_id } => format!(
            "check that the staged secret gets a token, then write it to {name} with its secret id ({})",
            new_id.as_deref().unwrap_or("as Cognito names it")
        ),
        Action::DropPending => format!("delete the staged copy {pending}"),
        Action::VerifyNew => {
            format!("check that the new credentials in {name} get a token from {}", proving(state, opts))
        }
        Action::Wait { remaining } if remaining.is_zero() => {
            format!("no wait left: {name} was written at least {} ago", humantime::format_duration(opts.wait))
        }
        Action::Wait { remaining } => format!(
            "wait {} for every broker's cached credentials to expire",
            humantime::format_duration(Duration::from_secs(remaining.as_secs()))
        ),
        Action::Delete { old_id } => format!("delete the old secret {old_id} from app client {client}"),
    }
}

fn key(opts: &RotateOptions, state: &State) -> Option<String> {
    opts.kms_key_id.clone().or_else(|| state.info.key_id.clone())
}

/// Runs (or with `dry_run`, plans) the rotation, reporting each step through `out`. Never reports a secret.
pub async fn rotate(
    ssm: &aws_sdk_ssm::Client,
    cognito: &Client,
    http: &reqwest::Client,
    opts: &RotateOptions,
    out: &mut dyn FnMut(&str),
) -> Result<RotateOutcome, RotateError> {
    // The digest of the stored value this run has already proved: later rounds re-plan from a fresh read and need
    // not prove the same value again (they do if someone else changed it meanwhile). A digest, so no secret is
    // compared or kept for this.
    let mut proved: Option<Vec<u8>> = None;
    for _ in 0..MAX_ROUNDS {
        let state = read_state(ssm, cognito, http, opts).await?;
        let mut steps = plan(&state, opts, SystemTime::now())?;
        if proved.as_deref() == Some(digest(&state.live).as_slice()) {
            steps.retain(|a| *a != Action::VerifyCurrent);
        }
        if opts.dry_run {
            out(&status(&state, opts));
            out("plan (dry run: nothing is changed):");
            for (i, a) in steps.iter().enumerate() {
                out(&format!("  {}. {}", i + 1, describe(a, &state, opts)));
            }
            return Ok(RotateOutcome::Planned);
        }
        for a in &steps {
            out(&format!("- {}", describe(a, &state, opts)));
            if let Some(done) = act(ssm, cognito, http, opts, &state, a, out).await? {
                return Ok(done);
            }
            if *a == Action::VerifyCurrent {
                proved = Some(digest(&state.live));
            }
            if a.changes() {
                break;
            }
        }
    }
    Err(RotateError::Refused(format!("the rotation did not settle in {MAX_ROUNDS} rounds; run it again")))
}

/// SHA-256 of a stored value.
fn digest(value: &SecretString) -> Vec<u8> {
    use sha2::Digest as _;
    sha2::Sha256::digest(value.expose_secret().as_bytes()).to_vec()
}

fn status(state: &State, opts: &RotateOptions) -> String {
    let mut s = format!(
        "parameter {} (version {}), app client {} in user pool {}\nsecrets:",
        opts.parameter, state.info.version, state.creds.client_id, opts.user_pool_id
    );
    for x in &state.secrets {
        let mark = if state.recorded.as_deref() == Some(x.id.as_str()) { " (in SSM)" } else { "" };
        let created = x.created.map(|t| humantime::format_rfc3339_seconds(t).to_string()).unwrap_or_default();
        let _ = write!(s, "\n  {} created {created}{mark}", x.id);
    }
    s
}

/// Carries out one step. `Some` when the run is over (done, or stopped as asked).
async fn act(
    ssm: &aws_sdk_ssm::Client,
    cognito: &Client,
    http: &reqwest::Client,
    opts: &RotateOptions,
    state: &State,
    action: &Action,
    out: &mut dyn FnMut(&str),
) -> Result<Option<RotateOutcome>, RotateError> {
    let name = &opts.parameter;
    let pending = pending_name(name);
    let stop = |at: StopAfter| (opts.stop_after == Some(at)).then_some(RotateOutcome::Stopped(at));
    let staged_creds = || async {
        let value = state.pending.as_ref().ok_or_else(|| RotateError::Refused(format!("{pending} is gone")))?;
        Ok::<_, RotateError>((value.clone(), secret::validate(value).await?))
    };
    match action {
        Action::VerifyCurrent | Action::VerifyNew => {
            match grant_within(http, &state.creds, opts.claims.as_ref(), opts.verify_timeout).await {
                Grant::Issued => Ok(None),
                Grant::TriggerRefused(why) => Err(RotateError::Refused(trigger_refusal(opts, name, &why))),
                Grant::Refused => Err(RotateError::Refused(format!(
                    "the token endpoint refuses the credentials in {name} (invalid_client); nothing more was changed"
                ))),
                Grant::Failed(why) => {
                    Err(RotateError::Refused(format!("cannot check the credentials in {name}: {why}")))
                }
            }
        }
        Action::Record { id } => {
            let put = PutOptions {
                kms_key_id: key(opts, state),
                overwrite: true,
                description: secret::description(Some(id)),
            };
            secret::put(ssm, name, &state.live, &put).await?;
            Ok(None)
        }
        Action::Stage { reuse: true } => Ok(None),
        Action::Stage { reuse: false } => {
            let value = secret::with_secret(&state.live, &generate_secret())?;
            let description = format!("token-broker: new secret staged while rotating {name}; not read by the broker");
            let put = PutOptions { kms_key_id: key(opts, state), overwrite: false, description };
            secret::put(ssm, &pending, &value, &put).await?;
            Ok(stop(StopAfter::Stage))
        }
        Action::Add => {
            let (_, creds) = staged_creds().await?;
            let id = add_secret(cognito, &opts.user_pool_id, &creds.client_id, &creds.client_secret).await?;
            out(&format!("  added secret {id}"));
            Ok(stop(StopAfter::Add))
        }
        Action::Write { new_id } => {
            let id = new_id.as_deref().ok_or_else(|| RotateError::Refused("the new secret's id is unknown".into()))?;
            let (value, _) = staged_creds().await?;
            let put = PutOptions {
                kms_key_id: key(opts, state),
                overwrite: true,
                description: secret::description(Some(id)),
            };
            secret::put(ssm, name, &value, &put).await?;
            Ok(stop(StopAfter::Write))
        }
        Action::DropPending => {
            secret::delete(ssm, &pending).await?;
            Ok(None)
        }
        Action::Wait { remaining } => {
            tokio::time::sleep(*remaining).await;
            Ok(None)
        }
        Action::Delete { old_id } => {
            delete_secret(cognito, &opts.user_pool_id, &state.creds.client_id, old_id).await?;
            let new_secret_id = state.recorded.clone().unwrap_or_default();
            Ok(Some(RotateOutcome::Rotated { old_secret_id: old_id.clone(), new_secret_id }))
        }
    }
}
