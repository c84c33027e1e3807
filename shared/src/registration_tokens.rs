//! Registration-token resets over the API (the legacy workflow's tokens; modern-runners.md,
//! "Token lifecycle"): the instance's by an admin, a group's by its Owner, a project's by a
//! Maintainer. 201 `{"token"}` (no `token_expires_at`: registration tokens do not expire); 403
//! for anyone else and for everyone while the legacy registration switch is off.
//!
//! DynamoDB round trips: 3 (the caller's token; the group or project item, which holds the
//! current digest, beside the caller's memberships and the settings; the transaction), one more
//! for a group or project named by path.

use crate::access::{self, MAINTAINER, OWNER};
use crate::auth::{Caller, TokenDigest, generate_token};
use crate::error::ApiError;
use crate::store::projects::PathKind;
use crate::store::{RegistrationScope, Store, back_off};
use crate::time::Timestamp;
use serde::Serialize;

/// How often a reset re-reads a token that another reset replaced meanwhile.
const RESET_ATTEMPTS: u32 = 3;

/// The answer: the new token, shown once.
#[derive(Debug, Serialize)]
pub struct RegistrationTokenReset {
    pub token: String,
}

/// Whose registration token a request names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetTarget<'a> {
    Instance,
    /// A group by id or full path.
    Group(&'a str),
    /// A project by id or full path.
    Project(&'a str),
}

/// Gives `scope` a new registration token in place of the one it has now (read first). `None`:
/// another reset replaced it meanwhile.
pub async fn replace_token(
    store: &Store,
    scope: &RegistrationScope,
) -> Result<Option<String>, ApiError> {
    let old = store.registration_token_digest(scope).await?;
    replace_token_from(store, scope, old.as_deref()).await
}

/// Gives `scope` a new registration token in place of the one whose digest is `old`.
async fn replace_token_from(
    store: &Store,
    scope: &RegistrationScope,
    old: Option<&str>,
) -> Result<Option<String>, ApiError> {
    let token = generate_token()?;
    let replaced = store
        .replace_registration_token(scope, old, &TokenDigest::of(&token), Timestamp::now())
        .await?;
    Ok(replaced.then_some(token))
}

/// Resets a registration token for `caller`, in GitLab's order: an unknown group or project (or
/// one the caller cannot see) is 404, a caller without the right (or any caller while
/// registration tokens are off) 403.
pub async fn reset(
    store: &Store,
    caller: Caller,
    target: ResetTarget<'_>,
) -> Result<RegistrationTokenReset, ApiError> {
    // The group or project item holds the token's digest; the instance's is in the settings.
    let holder = async {
        Ok::<_, ApiError>(match target {
            ResetTarget::Instance => None,
            ResetTarget::Group(group) => Some(
                store
                    .registration_holder(group, PathKind::Group)
                    .await?
                    .ok_or(ApiError::NotFound("Group"))?,
            ),
            ResetTarget::Project(project) => Some(
                store
                    .registration_holder(project, PathKind::Project)
                    .await?
                    .ok_or(ApiError::NotFound("Project"))?,
            ),
        })
    };
    let (holder, memberships, settings) = futures_util::future::join3(
        holder,
        access::memberships_of(store, caller),
        store.instance_settings(),
    )
    .await;
    let holder = holder?;
    let memberships = memberships?;
    let settings = settings?;
    let (scope, old) = match holder {
        Some(found) => found,
        None => (
            RegistrationScope::Instance,
            settings.registration_token_digest.clone(),
        ),
    };
    match &scope {
        RegistrationScope::Instance if !caller.admin => return Err(ApiError::Forbidden),
        RegistrationScope::Instance => {}
        RegistrationScope::Group(group) => {
            access::check_group_level(caller, group, &memberships, OWNER)?;
        }
        RegistrationScope::Project(project) => {
            access::check_project_level(caller, project, &memberships, MAINTAINER)?;
        }
    }
    // With registration tokens off nobody may reset one (GitLab: the permission is prevented).
    if !settings.allow_runner_registration_token {
        return Err(ApiError::Forbidden);
    }
    // The digest read above serves the first attempt; one that lost a race reads it again.
    if let Some(token) = replace_token_from(store, &scope, old.as_deref()).await? {
        return Ok(RegistrationTokenReset { token });
    }
    for attempt in 1..RESET_ATTEMPTS {
        back_off(attempt).await;
        if let Some(token) = replace_token(store, &scope).await? {
            return Ok(RegistrationTokenReset { token });
        }
    }
    Err(ApiError::Unavailable(
        "the registration token kept changing while being reset".into(),
    ))
}
