//! Registration-token resets over the API (the legacy workflow's tokens; modern-runners.md,
//! "Token lifecycle"): the instance's by an admin, a group's by its Owner, a project's by a
//! Maintainer. 201 `{"token"}` (no `token_expires_at`: registration tokens do not expire); 403
//! for anyone else and for everyone while the legacy registration switch is off.
//!
//! DynamoDB round trips: 4 (the caller's token; the group or project beside the caller's
//! memberships and the settings; the current digest; the transaction).

use crate::access::{self, MAINTAINER, OWNER};
use crate::auth::{Caller, TokenDigest, generate_token};
use crate::error::ApiError;
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
    let token = generate_token()?;
    let replaced = store
        .replace_registration_token(
            scope,
            old.as_deref(),
            &TokenDigest::of(&token),
            Timestamp::now(),
        )
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
    let scope = async {
        Ok::<_, ApiError>(match target {
            ResetTarget::Instance => RegistrationScope::Instance,
            ResetTarget::Group(group) => RegistrationScope::Group(
                store
                    .find_group(group)
                    .await?
                    .ok_or(ApiError::NotFound("Group"))?
                    .reference(),
            ),
            ResetTarget::Project(project) => RegistrationScope::Project(
                store
                    .find_project(project)
                    .await?
                    .ok_or(ApiError::NotFound("Project"))?
                    .reference(),
            ),
        })
    };
    let (scope, memberships, settings) = futures_util::future::join3(
        scope,
        access::memberships_of(store, caller),
        store.instance_settings(),
    )
    .await;
    let scope = scope?;
    let memberships = memberships?;
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
    if !settings?.allow_runner_registration_token {
        return Err(ApiError::Forbidden);
    }
    for attempt in 0..RESET_ATTEMPTS {
        if attempt > 0 {
            back_off(attempt).await;
        }
        if let Some(token) = replace_token(store, &scope).await? {
            return Ok(RegistrationTokenReset { token });
        }
    }
    Err(ApiError::Unavailable(
        "the registration token kept changing while being reset".into(),
    ))
}
