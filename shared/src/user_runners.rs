//! `POST /user/runners`: a user creates a runner (GitLab 15.10+'s workflow), gets its `glrt-`
//! token once, and hands it to the runner host, which then verifies with it. Checks run in
//! GitLab's order: parameters (400 `error`), the named group or project (400 `message`),
//! permission (403), then the model's rules (400 as one sentence).
//!
//! DynamoDB round trips: 4 (the token; the group or project beside the caller's memberships and
//! the settings; the id; the transaction).

use crate::access::{self, MAINTAINER, OWNER};
use crate::auth::{Caller, TokenDigest};
use crate::entities::RunnerRegistrationDetails;
use crate::error::ApiError;
use crate::params::Params;
use crate::runner::{AccessLevel, Runner, RunnerChanges, RunnerType};
use crate::runner_tokens::insert_runner;
use crate::store::Store;
use crate::time::Timestamp;

/// A validated `POST /user/runners` request.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateRunnerRequest {
    pub scope: Scope,
    pub changes: RunnerChanges,
}

/// Where the runner is to live, as the request names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Instance,
    Group(i64),
    Project(i64),
}

impl CreateRunnerRequest {
    /// Reads the parameters in GitLab's declaration order. There is no `active`, `info` or
    /// `token` here: the runner reports its name and version when it first contacts us.
    pub fn from_params(params: &Params) -> Result<Self, ApiError> {
        let mut p = params.reader();
        if !params.contains("runner_type") {
            p.problem("runner_type is missing");
        }
        let runner_type = p
            .one_of("runner_type", &RunnerType::NAMES)
            .and_then(|name| RunnerType::parse(&name));
        let group_id = p.int("group_id");
        if runner_type == Some(RunnerType::Group) && !params.contains("group_id") {
            p.problem("group_id is missing");
        }
        let project_id = p.int("project_id");
        if runner_type == Some(RunnerType::Project) && !params.contains("project_id") {
            p.problem("project_id is missing");
        }
        let description = p.string("description");
        let maintenance_note = p.string("maintenance_note");
        let paused = p.bool("paused");
        let locked = p.bool("locked");
        let run_untagged = p.bool("run_untagged");
        let tag_list = p.tags("tag_list");
        let access_level = p.one_of("access_level", &AccessLevel::NAMES);
        let maximum_timeout = p.int("maximum_timeout");
        p.finish()?;
        let scope = match (runner_type, group_id, project_id) {
            (Some(RunnerType::Group), Some(group), _) => Scope::Group(group),
            (Some(RunnerType::Project), _, Some(project)) => Scope::Project(project),
            _ => Scope::Instance,
        };
        Ok(Self {
            scope,
            changes: RunnerChanges {
                description,
                active: paused.map(|paused| !paused),
                locked,
                run_untagged,
                tag_list,
                access_level: access_level.as_deref().and_then(AccessLevel::parse),
                maximum_timeout,
                maintenance_note,
            },
        })
    }
}

/// Creates the runner: 201 with its id and `glrt-` token (shown this once).
pub async fn create_runner(
    store: &Store,
    caller: Caller,
    request: CreateRunnerRequest,
) -> Result<RunnerRegistrationDetails, ApiError> {
    let now = Timestamp::now();
    let mut runner = Runner::new(0, RunnerType::Instance, TokenDigest::of(""), now);
    // The named group or project, the caller's memberships and the settings (token expiry)
    // are independent reads.
    let (placed, memberships, settings) = futures_util::future::join3(
        place(store, request.scope, &mut runner),
        access::memberships_of(store, caller),
        store.instance_settings(),
    )
    .await;
    // GitLab looks the group or project up before any permission check: an unknown id is a 400
    // even for a caller who could not create anything there.
    placed?;
    let memberships = memberships?;
    let allowed = caller.admin
        || match (&runner.group, runner.projects.first()) {
            (Some(group), _) => memberships.group_level(group.id, &group.ancestor_ids) >= OWNER,
            (None, Some(project)) => memberships.project_level(project) >= MAINTAINER,
            (None, None) => false,
        };
    if !allowed {
        return Err(ApiError::forbidden_because("Insufficient permissions"));
    }
    runner.apply(request.changes);
    runner.created_by = Some(caller.user_id);
    if let Err(ApiError::Validation(errors)) = runner.validate() {
        return Err(ApiError::BadRequest(
            format!("400 Bad request - {}", errors.to_sentence()).into(),
        ));
    }
    insert_runner(store, runner, None, &settings?.token_expiry).await
}

/// Gives `runner` its type and its group or project, read by id: 400 when there is none.
async fn place(store: &Store, scope: Scope, runner: &mut Runner) -> Result<(), ApiError> {
    match scope {
        Scope::Instance => runner.runner_type = RunnerType::Instance,
        Scope::Group(id) => {
            let group = store.get_group(id).await?.ok_or(ApiError::BadRequest(
                "400 Bad request - Missing/invalid group".into(),
            ))?;
            runner.runner_type = RunnerType::Group;
            runner.group = Some(group.reference());
        }
        Scope::Project(id) => {
            let project =
                store
                    .find_project(&id.to_string())
                    .await?
                    .ok_or(ApiError::BadRequest(
                        "400 Bad request - Missing/invalid project".into(),
                    ))?;
            runner.runner_type = RunnerType::Project;
            runner.projects = vec![project.reference()];
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(query: &str) -> Result<CreateRunnerRequest, ApiError> {
        CreateRunnerRequest::from_params(&Params::from_query(query).unwrap())
    }

    #[test]
    fn parameter_errors_in_gitlab_order() {
        let error = |query| read(query).unwrap_err().body();
        assert_eq!(error(""), json!({"error": "runner_type is missing"}));
        assert_eq!(
            error("runner_type=shared"),
            json!({"error": "runner_type does not have a valid value"})
        );
        assert_eq!(
            error("runner_type=group_type&project_id=1"),
            json!({"error": "group_id is missing"})
        );
        assert_eq!(
            error("runner_type=project_type"),
            json!({"error": "project_id is missing"})
        );
        assert_eq!(
            error("runner_type=group_type&group_id=x&paused=maybe"),
            json!({"error": "group_id is invalid, paused is invalid"})
        );
    }

    #[test]
    fn reads_scope_and_settings() {
        let request =
            read("runner_type=project_type&project_id=7&group_id=3&paused=true&tag_list=a,b")
                .unwrap();
        assert_eq!(request.scope, Scope::Project(7));
        assert_eq!(request.changes.active, Some(false));
        assert_eq!(
            request.changes.tag_list,
            Some(vec!["a".to_owned(), "b".to_owned()])
        );
        assert_eq!(
            read("runner_type=instance_type&group_id=3").unwrap().scope,
            Scope::Instance
        );
    }
}
