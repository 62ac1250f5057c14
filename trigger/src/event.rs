//! The parts of Cognito's pre-token-generation event (version 3, `V3_0`) the trigger reads, and the part of the
//! response it writes.
//!
//! The trigger never rebuilds the event from these types: Cognito expects the whole event back, so the handler
//! works on the event as JSON and these types only read from it and describe what is written into it. That keeps
//! every field Cognito sends (including ones added after this was written) intact.
//!
//! `aws_lambda_events` has the version 2 event, whose trigger sources lack `TokenGeneration_ClientCredentials` and
//! whose claim values are strings only; its caller context fits and is used.

use std::collections::{BTreeMap, HashMap};

use aws_lambda_events::event::cognito::CognitoEventUserPoolsCallerContext;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The trigger source of a client-credentials grant (`/oauth2/token` or `GetClientToken`).
pub const CLIENT_CREDENTIALS: &str = "TokenGeneration_ClientCredentials";
/// The `version` of the events a `V3_0` trigger receives.
pub const EVENT_VERSION: &str = "3";

/// A pre-token-generation event as far as the trigger reads it. Fields are optional where Cognito documents them
/// as possibly null; the trigger decides what a missing one means.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TriggerEvent {
    /// `"3"` for a `V3_0` trigger.
    pub version: Option<String>,
    /// Why Cognito is issuing a token (`TokenGeneration_ClientCredentials`, `TokenGeneration_Authentication`, ...).
    pub trigger_source: Option<String>,
    /// The pool's region.
    pub region: Option<String>,
    /// The pool's id.
    pub user_pool_id: Option<String>,
    /// The user, or for a client-credentials grant a stand-in name.
    pub user_name: Option<String>,
    /// The app client the token is for.
    #[serde(default)]
    pub caller_context: Option<CognitoEventUserPoolsCallerContext>,
    /// The request details.
    #[serde(default)]
    pub request: Option<TriggerRequest>,
}

/// The `request` of a pre-token-generation event.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TriggerRequest {
    /// The user's attributes (empty for a client-credentials grant).
    pub user_attributes: Option<HashMap<String, String>>,
    /// The user's groups and roles (not used by the trigger; its shape is Cognito's).
    pub group_configuration: Option<Value>,
    /// The scopes the token will carry.
    pub scopes: Option<Vec<String>>,
    /// The client metadata of the token request, unchecked: the trigger reads it as JSON and verifies it.
    pub client_metadata: Option<Value>,
}

/// `response.claimsAndScopeOverrideDetails` as the trigger writes it: access-token claims only, nothing suppressed,
/// no scope changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClaimsAndScopeOverrideDetails {
    /// What to change in the access token.
    pub access_token_generation: AccessTokenGeneration,
}

/// `accessTokenGeneration`: the claims to add. `V3_0` allows JSON values, which `cnf` needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessTokenGeneration {
    /// Claim name to value.
    pub claims_to_add_or_override: BTreeMap<String, Value>,
}
