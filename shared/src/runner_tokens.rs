//! The three endpoints a runner calls with a token: register, verify (heartbeat), unregister.
//!
//! DynamoDB round trips: register 3 (token, id, transaction); verify 1 when the heartbeat is
//! fresh, else 2 (token, then runner and token updates in parallel); unregister 3 (token,
//! runner, transaction).

use crate::auth::{CREATED_RUNNER_TOKEN_PREFIX, TokenDigest, generate_token};
use crate::entities::{ResetTokenResult, RunnerRegistrationDetails};
use crate::error::ApiError;
use crate::params::{ParamReader, Params};
use crate::runner::{
    AccessLevel, MAX_SYSTEM_ID_CHARS, Runner, RunnerChanges, RunnerInfo, RunnerType,
};
use crate::store::{
    ContactState, CreateRunnerError, Heartbeat, IdSequence, LastVersion, RegistrationScope,
    SeenBefore, Store, TokenRecord, back_off,
};
use crate::time::Timestamp;
use crate::token_expiry::{TokenExpiry, unexpired};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// How often register retries after an id or token collision before giving up.
const CREATE_ATTEMPTS: usize = 3;
/// How often unregister re-reads a runner that changed under it.
const DELETE_ATTEMPTS: u32 = 3;

/// A validated `POST /runners` request.
#[derive(Debug, Clone, PartialEq)]
pub struct RegistrationRequest {
    pub token: String,
    pub changes: RunnerChanges,
    pub info: RunnerInfo,
    pub ip_address: Option<String>,
}

fn info_field(info: Option<&Map<String, Value>>, key: &str) -> Option<String> {
    match info?.get(key)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn runner_info(info: Option<&Map<String, Value>>) -> RunnerInfo {
    RunnerInfo {
        name: info_field(info, "name"),
        version: info_field(info, "version"),
        revision: info_field(info, "revision"),
        platform: info_field(info, "platform"),
        architecture: info_field(info, "architecture"),
    }
}

/// A present, non-blank string: registration ignores blank attributes (GitLab's
/// `attributes_for_keys`), so `description=""` keeps the default.
fn present(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

/// The runner token, which every runner-token endpoint requires.
pub fn required_token(reader: &mut ParamReader<'_>) -> Option<String> {
    reader.required_string("token")
}

impl RegistrationRequest {
    /// Reads the parameters in GitLab's declaration order, so that several failures are
    /// reported as GitLab would.
    pub fn from_params(params: &Params, ip_address: Option<String>) -> Result<Self, ApiError> {
        let mut p = params.reader();
        let token = required_token(&mut p);
        let description = p.string("description");
        let maintenance_note = p
            .string("maintenance_note")
            .or_else(|| p.string("maintainer_note"));
        let info = p.object("info").cloned();
        let active = p.bool("active");
        let paused = p.bool("paused");
        let locked = p.bool("locked");
        let access_level = p.one_of("access_level", &AccessLevel::NAMES);
        let run_untagged = p.bool("run_untagged");
        let tag_list = p.tags("tag_list");
        let maximum_timeout = p.int("maximum_timeout");
        p.mutually_exclusive("active", "paused");
        p.finish()?;
        Ok(Self {
            token: token.unwrap_or_default(),
            changes: RunnerChanges {
                description: present(description),
                active: active.or(paused.map(|p| !p)),
                locked,
                run_untagged,
                tag_list,
                access_level: access_level.as_deref().and_then(AccessLevel::parse),
                maximum_timeout,
                maintenance_note: present(maintenance_note),
            },
            info: runner_info(info.as_ref()),
            ip_address,
        })
    }
}

/// Registers a runner with a registration token: 201 with its id and new token; 403 for a token
/// that is not a registration token; 400 for a runner GitLab's rules reject.
pub async fn register(
    store: &Store,
    request: RegistrationRequest,
) -> Result<RunnerRegistrationDetails, ApiError> {
    let registration_digest = TokenDigest::of(&request.token);
    // The switch is read beside the token: no extra round trip.
    let (found, settings) = futures_util::future::join(
        store.find_token(&registration_digest),
        store.instance_settings(),
    )
    .await;
    let settings = settings?;
    // GitLab: with registration tokens off, any non-empty token is 410, even an unknown one.
    if !settings.allow_runner_registration_token && !request.token.is_empty() {
        return Err(ApiError::Gone("runner registration disallowed"));
    }
    let scope = match found? {
        Some(TokenRecord::Registration(scope)) => scope,
        _ => return Err(ApiError::Forbidden),
    };
    let now = Timestamp::now();
    let (runner_type, projects, group) = match scope {
        RegistrationScope::Instance => (RunnerType::Instance, vec![], None),
        RegistrationScope::Group(group) => (RunnerType::Group, vec![], Some(group)),
        RegistrationScope::Project(project) => (RunnerType::Project, vec![project], None),
    };
    let mut runner = Runner::new(0, runner_type, registration_digest.clone(), now);
    runner.apply(request.changes);
    runner.info = request.info;
    runner.ip_address = request.ip_address;
    runner.projects = projects;
    runner.group = group;
    // Validate before taking an id, so that rejected registrations cost no write.
    runner.validate()?;
    insert_runner(
        store,
        runner,
        Some(&registration_digest),
        &settings.token_expiry,
    )
    .await
}

/// A new authentication token for `runner`, in the form its registration type calls for.
pub fn new_runner_token(runner: &Runner) -> Result<String, ApiError> {
    let token = generate_token()?;
    Ok(match runner.created_by {
        Some(_) => format!("{CREATED_RUNNER_TOKEN_PREFIX}{token}"),
        None => token,
    })
}

/// Gives a validated runner an id and a token (expiring as `expiry` says) and writes it (for a
/// registration, on condition that the registration token still exists). An id or token that
/// turns out taken is retried with new ones; the token is returned once and only its digest is
/// stored.
pub async fn insert_runner(
    store: &Store,
    mut runner: Runner,
    registration: Option<&TokenDigest>,
    expiry: &TokenExpiry,
) -> Result<RunnerRegistrationDetails, ApiError> {
    runner.token_expires_at = expiry.expires_at(&runner, runner.created_at);
    for _ in 0..CREATE_ATTEMPTS {
        runner.id = store.allocate_id(IdSequence::Runner).await?;
        let token = new_runner_token(&runner)?;
        runner.token_digest = TokenDigest::of(&token);
        match store.create_runner(&runner, registration).await {
            Ok(()) => {
                return Ok(RunnerRegistrationDetails {
                    id: runner.id,
                    token,
                    token_expires_at: runner.token_expires_at,
                });
            }
            Err(CreateRunnerError::RegistrationTokenGone) => return Err(ApiError::Forbidden),
            Err(CreateRunnerError::Collision) => {
                tracing::warn!(
                    runner_id = runner.id,
                    "runner id or token already taken; retrying"
                );
            }
            Err(CreateRunnerError::Storage(e)) => return Err(e),
        }
    }
    Err(ApiError::internal(
        "no free runner id after retries: is the runner counter behind the data?",
    ))
}

/// What a heartbeat carries: the client address, `info` version fields and the host's
/// `system_id`. (`info[name]` is only taken at registration, as in GitLab.)
pub fn heartbeat_from_params(params: &Params, ip_address: Option<String>) -> Heartbeat {
    let info = match params.get("info") {
        Some(Value::Object(info)) => Some(info),
        _ => None,
    };
    let system_id = match params.get("system_id") {
        Some(Value::String(id)) if !id.trim().is_empty() => Some(id.clone()),
        Some(Value::Number(id)) => Some(id.to_string()),
        _ => None,
    };
    Heartbeat {
        ip_address,
        info: RunnerInfo {
            name: None,
            ..runner_info(info)
        },
        system_id,
        executor: info_field(info, "executor"),
    }
}

/// A presented runner token that names a runner: what `verify` and `jobs/request` start from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerToken {
    pub runner_id: i64,
    pub digest: TokenDigest,
    /// When the last heartbeat was recorded, copied on the token item so that a poll can skip
    /// the write without reading the runner.
    pub heartbeat_at: Option<Timestamp>,
    /// The runner's job queues, copied on the token item (see `TokenRecord::Runner`).
    pub queues: Option<Vec<String>>,
    /// When this token stops working.
    pub expires_at: Option<Timestamp>,
    /// When each manager's heartbeat was last written (see `TokenRecord::Runner`).
    pub managers: Option<BTreeMap<String, Timestamp>>,
    /// The runner's type (see `TokenRecord::Runner`).
    pub runner_type: Option<crate::runner::RunnerType>,
    /// When the runner was created (see `TokenRecord::Runner`).
    pub runner_created_at: Option<Timestamp>,
    /// The version the runner last reported (see `TokenRecord::Runner`).
    pub runner_version: LastVersion,
}

impl RunnerToken {
    /// The runner `token` belongs to: one read. Any other token (unknown, expired, a
    /// registration token, a personal access token) is GitLab's 403.
    pub async fn find(store: &Store, token: &str) -> Result<Self, ApiError> {
        let digest = TokenDigest::of(token);
        match store.find_token(&digest).await? {
            Some(TokenRecord::Runner {
                runner_id,
                heartbeat_at,
                queues,
                managers,
                expires_at,
                runner_type,
                runner_created_at,
                runner_version,
            }) if unexpired(expires_at, Timestamp::now()) => Ok(Self {
                runner_id,
                digest,
                heartbeat_at,
                queues,
                managers,
                expires_at,
                runner_type,
                runner_created_at,
                runner_version,
            }),
            _ => Err(ApiError::Forbidden),
        }
    }

    /// What the token says of the runner: its type and when it was last seen (its last
    /// contact, or else its creation), when the token knows them.
    fn contact_state(&self) -> ContactState {
        let seen = match (self.heartbeat_at, self.runner_created_at) {
            (Some(last), _) => SeenBefore::Contacted(last),
            (None, Some(created_at)) => SeenBefore::Created(created_at),
            (None, None) => return ContactState::Unknown,
        };
        match self.runner_type {
            Some(runner_type) => ContactState::Known {
                runner_type,
                seen,
                version: self.runner_version.clone(),
            },
            None => ContactState::Unknown,
        }
    }

    /// Records `heartbeat` unless the runner's last one, and its manager's when it names one,
    /// are younger than `interval_secs`. Fields over their limits are a 400 before anything is
    /// written; a runner that went (or changed its token) meanwhile is a 403.
    pub async fn heartbeat(
        &self,
        store: &Store,
        heartbeat: &Heartbeat,
        interval_secs: i64,
    ) -> Result<(), ApiError> {
        heartbeat.validate()?;
        let now = Timestamp::now();
        let recent = |at: Option<Timestamp>| {
            at.is_some_and(|at| at.within(now, interval_secs.saturating_mul(1000)))
        };
        let manager_recent = match &heartbeat.system_id {
            None => true,
            Some(system_id) => recent(
                self.managers
                    .as_ref()
                    .and_then(|managers| managers.get(system_id))
                    .copied(),
            ),
        };
        if (recent(self.heartbeat_at) && manager_recent)
            || store
                .record_heartbeat(
                    self.runner_id,
                    &self.digest,
                    heartbeat,
                    self.managers.is_some(),
                    self.contact_state(),
                    now,
                )
                .await?
        {
            Ok(())
        } else {
            Err(ApiError::Forbidden)
        }
    }
}

/// Verifies a runner token and records a heartbeat, at most once per `heartbeat_interval_secs`.
pub async fn verify(
    store: &Store,
    token: &str,
    heartbeat: &Heartbeat,
    heartbeat_interval_secs: i64,
) -> Result<RunnerRegistrationDetails, ApiError> {
    let runner = RunnerToken::find(store, token).await?;
    runner
        .heartbeat(store, heartbeat, heartbeat_interval_secs)
        .await?;
    Ok(RunnerRegistrationDetails {
        id: runner.runner_id,
        token: token.to_owned(),
        token_expires_at: runner.expires_at,
    })
}

/// Gives `runner` (as read) a new token, expiring as `expiry` says now; the old one stops
/// working when this answers. `None` when the token changed meanwhile (another rotation won):
/// the caller's view is stale.
pub async fn rotate_token(
    store: &Store,
    runner: &Runner,
    expiry: &TokenExpiry,
) -> Result<Option<ResetTokenResult>, ApiError> {
    let token = new_runner_token(runner)?;
    let now = Timestamp::now();
    let expires_at = expiry.expires_at(runner, now);
    let rotated = store
        .rotate_runner_token(runner, &TokenDigest::of(&token), expires_at, now)
        .await?;
    Ok(rotated.then_some(ResetTokenResult {
        token,
        token_expires_at: expires_at,
    }))
}

/// Self-rotation: the runner presents its current token and gets a new one. A token that lost a
/// race with another rotation is no longer the runner's: 403, as for any unknown token.
pub async fn rotate_own_token(store: &Store, token: &str) -> Result<ResetTokenResult, ApiError> {
    let found = RunnerToken::find(store, token).await?;
    let (runner, settings) =
        futures_util::future::join(store.get_runner(found.runner_id), store.instance_settings())
            .await;
    let runner = runner?
        .filter(|r| r.token_digest == found.digest)
        .ok_or(ApiError::Forbidden)?;
    rotate_token(store, &runner, &settings?.token_expiry)
        .await?
        .ok_or(ApiError::Forbidden)
}

/// `If-Unmodified-Since` is precise to the second; a runner changed within the second the
/// client names is not "modified since".
pub fn modified_since(updated_at: Timestamp, if_unmodified_since: Option<Timestamp>) -> bool {
    if_unmodified_since
        .is_some_and(|since| since.millis().div_euclid(1000) < updated_at.millis().div_euclid(1000))
}

/// `DELETE /runners/managers`: a host leaves a runner it served (what `gitlab-runner unregister`
/// does for a `glrt-` token); the runner and its other managers stay. 404 when the runner has no
/// manager with that `system_id`.
pub async fn unregister_manager(
    store: &Store,
    token: &str,
    system_id: &str,
) -> Result<(), ApiError> {
    let runner = RunnerToken::find(store, token).await?;
    // No manager has an empty or overlong `system_id` (heartbeats refuse them), and such a value
    // would make a key DynamoDB refuses: there is nothing to delete.
    if system_id.is_empty() || system_id.chars().count() > MAX_SYSTEM_ID_CHARS {
        return Err(ApiError::NotFound("Runner manager not found"));
    }
    let deleted = store
        .delete_runner_manager(
            runner.runner_id,
            &runner.digest,
            system_id,
            runner.managers.is_some(),
        )
        .await?;
    if deleted {
        Ok(())
    } else {
        Err(ApiError::NotFound("Runner manager not found"))
    }
}

/// Removes the runner a token belongs to, with its token item, links and managers.
pub async fn unregister(
    store: &Store,
    token: &str,
    if_unmodified_since: Option<Timestamp>,
) -> Result<(), ApiError> {
    let RunnerToken {
        runner_id, digest, ..
    } = RunnerToken::find(store, token).await?;
    for attempt in 0..DELETE_ATTEMPTS {
        if attempt > 0 {
            back_off(attempt).await;
        }
        let Some((runner, managers)) = store.runner_and_managers(runner_id).await? else {
            return Err(ApiError::Forbidden);
        };
        if runner.token_digest != digest {
            return Err(ApiError::Forbidden);
        }
        if modified_since(runner.updated_at, if_unmodified_since) {
            return Err(ApiError::PreconditionFailed);
        }
        if store.delete_runner(&runner, &managers).await? {
            return Ok(());
        }
    }
    Err(ApiError::internal(format!(
        "runner {runner_id} kept changing while being deleted"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params(value: Value) -> Params {
        let Value::Object(map) = value else {
            unreachable!()
        };
        let mut text = Vec::new();
        for (k, v) in map {
            text.push(format!("{k}={}", v.as_str().unwrap_or_default()));
        }
        Params::from_query(&text.join("&")).unwrap()
    }

    #[test]
    fn registration_defaults_and_blank_values() {
        let request = RegistrationRequest::from_params(
            &params(json!({"token": "t", "description": "", "maximum_timeout": ""})),
            None,
        )
        .unwrap();
        assert_eq!(request.token, "t");
        assert_eq!(
            request.changes,
            RunnerChanges::default(),
            "blank values are ignored at registration"
        );
    }

    #[test]
    fn registration_reads_info_and_paused() {
        let p = Params::from_query(
            "token=t&info[name]=box&info[version]=12.0&paused=true&tag_list=a,b",
        )
        .unwrap();
        let request = RegistrationRequest::from_params(&p, Some("10.0.0.1".into())).unwrap();
        assert_eq!(request.info.name.as_deref(), Some("box"));
        assert_eq!(request.info.version.as_deref(), Some("12.0"));
        assert_eq!(request.changes.active, Some(false));
        assert_eq!(request.changes.tag_list, Some(vec!["a".into(), "b".into()]));
        assert_eq!(request.ip_address.as_deref(), Some("10.0.0.1"));
    }

    #[test]
    fn registration_parameter_errors_in_gitlab_order() {
        let p = Params::from_query("active=maybe&access_level=x&maximum_timeout=soon").unwrap();
        let error = RegistrationRequest::from_params(&p, None).unwrap_err();
        assert_eq!(
            error.body(),
            json!({"error": "token is missing, active is invalid, access_level does not have a valid value, maximum_timeout is invalid"})
        );
    }

    #[test]
    fn if_unmodified_since_compares_whole_seconds() {
        let updated = Timestamp::from_millis(1_000_500);
        assert!(!modified_since(updated, None));
        assert!(
            !modified_since(updated, Some(Timestamp::from_millis(1_000_000))),
            "same second"
        );
        assert!(modified_since(
            updated,
            Some(Timestamp::from_millis(999_999))
        ));
        assert!(!modified_since(
            updated,
            Some(Timestamp::from_millis(2_000_000))
        ));
    }
}
