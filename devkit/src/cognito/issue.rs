//! What the two token entry points (`POST /oauth2/token` and the `GetClientToken` API operation) share: client
//! authentication, the scope grant, the request counters and the minting of the access token. NOT FOR PRODUCTION.
//!
//! Why one module: Cognito issues the same client-credentials access token whichever way it is asked for, runs the
//! same pre-token-generation trigger before signing it and counts both against the same M2M quota; a test that
//! switches the broker from one entry point to the other must see no other difference.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::keys::{now_secs, random_uuid, AccessTokenClaims};
use super::{auth, lock, pretoken, ClientFlow, Shared};

/// Client metadata of one token request: string keys and values, as Cognito's `ClientMetadata` and the token
/// endpoint's `aws_client_metadata` carry them.
pub(super) type ClientMetadata = HashMap<String, String>;

/// Which entry point a token request came through; the trigger event and the logs say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum EntryPoint {
    /// `POST /oauth2/token`, grant type `client_credentials`.
    TokenEndpoint,
    /// The `GetClientToken` user-pool API operation.
    GetClientToken,
}

impl EntryPoint {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            EntryPoint::TokenEndpoint => "oauth2_token",
            EntryPoint::GetClientToken => "get_client_token",
        }
    }
}

/// Counts one token request, whatever its outcome. Per-client counts are kept only for registered ids, so a caller
/// cannot grow the map.
pub(super) fn count_token_request(shared: &Shared, named_client: Option<String>) {
    shared.counters.token_requests.fetch_add(1, Ordering::SeqCst);
    if let Some(id) = named_client {
        if lock(&shared.clients).contains_key(&id) {
            *lock(&shared.counters.per_client).entry(id).or_insert(0) += 1;
        }
    }
}

/// What an authenticated client may be granted.
pub(super) struct AuthenticatedClient {
    pub allowed_scopes: Vec<String>,
    pub validity: Duration,
    pub flow: ClientFlow,
    pub client_credentials_enabled: bool,
}

/// Why client authentication failed. The token endpoint answers both with `invalid_client`; the API tells them
/// apart, as Cognito's API does (`ResourceNotFoundException`, `NotAuthorizedException`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AuthFailure {
    UnknownClient,
    WrongSecret,
}

/// Looks the client up and compares `secret` in constant time with each of its active secrets; an unknown id is
/// compared against a dummy digest so it costs the same as a wrong secret.
pub(super) fn authenticate(shared: &Shared, client_id: &str, secret: &str) -> Result<AuthenticatedClient, AuthFailure> {
    let clients = lock(&shared.clients);
    let Some(entry) = clients.get(client_id) else {
        let _ = std::hint::black_box(auth::secret_matches(secret, &[0u8; 32]));
        return Err(AuthFailure::UnknownClient);
    };
    if !entry.secrets.matches(secret) {
        return Err(AuthFailure::WrongSecret);
    }
    Ok(AuthenticatedClient {
        allowed_scopes: entry.allowed_scopes.clone(),
        validity: entry.token_validity,
        flow: entry.flow,
        client_credentials_enabled: entry.client_credentials_enabled,
    })
}

/// Why the requested scopes cannot be granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ScopeRefusal {
    /// A requested scope is not among the client's allowed scopes.
    NotAllowed,
    /// Nothing was requested and the client has no scopes: a client-credentials token needs at least one.
    NoneGranted,
}

/// The scopes to grant: `requested` (duplicates already dropped) when every one is allowed, all of the client's
/// scopes when nothing is requested ("If the client doesn't request any scopes, the authentication server uses all
/// custom scopes associated with the client").
pub(super) fn grant_scopes(requested: Vec<String>, allowed: Vec<String>) -> Result<Vec<String>, ScopeRefusal> {
    let granted = if requested.is_empty() {
        allowed
    } else if requested.iter().all(|s| allowed.contains(s)) {
        requested
    } else {
        return Err(ScopeRefusal::NotAllowed);
    };
    if granted.is_empty() {
        return Err(ScopeRefusal::NoneGranted);
    }
    Ok(granted)
}

/// An access token and its lifetime.
pub(super) struct Issued {
    pub access_token: String,
    pub expires_in: u64,
}

/// Why no token was issued after the request itself was accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum IssueError {
    /// The pre-token-generation trigger failed the token, with this message.
    TriggerFailed(String),
    /// The trigger answered with something Cognito cannot read.
    TriggerResponseInvalid,
    /// The token could not be signed (a stand-in fault, not a request problem).
    Signing,
}

impl IssueError {
    /// The message Cognito gives for a failed trigger, in the API's error and the token endpoint's
    /// `error_description`.
    pub(super) fn trigger_message(&self) -> Option<String> {
        match self {
            IssueError::TriggerFailed(m) => Some(format!("PreTokenGeneration failed with error {m}.")),
            IssueError::TriggerResponseInvalid => Some("Invalid lambda response received.".to_owned()),
            IssueError::Signing => None,
        }
    }
}

/// What one grant is for.
pub(super) struct Grant<'a> {
    pub entry: EntryPoint,
    pub client_id: &'a str,
    pub scopes: Vec<String>,
    pub validity: Duration,
    pub metadata: Option<&'a ClientMetadata>,
}

/// Builds the access token of a grant, runs the pre-token-generation trigger on it when one is configured, signs it
/// and counts it.
pub(super) fn issue(shared: &Shared, grant: Grant<'_>) -> Result<Issued, IssueError> {
    let now = now_secs();
    let expires_in = grant.validity.as_secs().max(1);
    let mut scopes = grant.scopes;
    let mut extra = serde_json::Map::new();
    let trigger = tb_shared::sync::read(&shared.pre_token_generation).clone();
    if let Some(trigger) = trigger {
        let event = pretoken::event(&pretoken::EventInput {
            pool_id: &shared.pool_id,
            client_id: grant.client_id,
            scopes: &scopes,
            metadata: grant.metadata,
        });
        // Never the metadata or the answer in a log line: the metadata carries a MAC.
        let answer = trigger.invoke(event).map_err(|message| {
            tracing::debug!(
                client_id = grant.client_id,
                entry = grant.entry.as_str(),
                "cognito stand-in: the pre-token-generation trigger failed the token"
            );
            IssueError::TriggerFailed(message)
        })?;
        let overrides = pretoken::Overrides::from_event(&answer).map_err(|()| {
            tracing::debug!(client_id = grant.client_id, "cognito stand-in: the trigger's answer is not readable");
            IssueError::TriggerResponseInvalid
        })?;
        overrides.apply(grant.client_id, &mut scopes, &mut extra);
    }
    let claims = AccessTokenClaims {
        sub: grant.client_id.to_owned(),
        token_use: "access".to_owned(),
        scope: scopes.join(" "),
        auth_time: now,
        iss: shared.issuer.clone(),
        exp: now + expires_in,
        iat: now,
        version: 2,
        jti: random_uuid(),
        client_id: grant.client_id.to_owned(),
        extra,
    };
    let signed = tb_shared::sync::read(&shared.keys).current().sign(&claims);
    let access_token = signed.map_err(|e| {
        tracing::error!(error = %e, "cognito stand-in could not sign a token");
        IssueError::Signing
    })?;
    shared.counters.tokens_issued.fetch_add(1, Ordering::SeqCst);
    tracing::debug!(
        client_id = grant.client_id,
        entry = grant.entry.as_str(),
        scope = %claims.scope,
        expires_in,
        "cognito stand-in issued a token"
    );
    Ok(Issued { access_token, expires_in })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn scopes_default_to_the_clients_and_must_be_allowed() {
        assert_eq!(grant_scopes(vec![], v(&["a/r", "a/w"])), Ok(v(&["a/r", "a/w"])));
        assert_eq!(grant_scopes(v(&["a/w"]), v(&["a/r", "a/w"])), Ok(v(&["a/w"])));
        assert_eq!(grant_scopes(v(&["a/r", "b/x"]), v(&["a/r"])), Err(ScopeRefusal::NotAllowed));
        assert_eq!(grant_scopes(vec![], vec![]), Err(ScopeRefusal::NoneGranted));
    }
}
