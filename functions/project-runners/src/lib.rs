//! A project's runners: `GET /projects/:id/runners` (the project's own runners, the group
//! runners of its group and every ancestor, and every instance runner), `POST` to enable a
//! runner in the project, `DELETE .../:runner_id` to disable it. `:id` is a numeric id or a
//! URL-encoded full path.
//!
//! Checks in GitLab's order: authentication; the project (404 when unknown or invisible to the
//! caller) and Maintainer access (403); parameters (400); the runner and its rules.
//! Round trips: token and project together; memberships, runner and links together; one write
//! or batch.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use axum::routing::{delete, get, post};
use futures_util::future::OptionFuture;
use runners_shared::access::{self, MAINTAINER, Memberships};
use runners_shared::auth::{Access, Caller, authenticate};
use runners_shared::entities::RunnerEntity;
use runners_shared::error::{ValidationErrors, json_response};
use runners_shared::http::{PathParams, base_url, if_unmodified_since, paginated};
use runners_shared::pagination::PageRequest;
use runners_shared::params::Params;
use runners_shared::registration_tokens::{self, ResetTarget};
use runners_shared::runner::{Runner, RunnerType};
use runners_shared::runner_filter::{Criterion, RunnerFilter, RunnerList};
use runners_shared::runner_tokens::modified_since;
use runners_shared::store::RUNNER_WRITE_ATTEMPTS;
use runners_shared::store::directory::MemberOf;
use runners_shared::store::listing::{MAX_INTERSECTED_CRITERIA, RunnerCounts};
use runners_shared::store::lists::HEAD_PAGE_END;
use runners_shared::store::projects::LinkChange;
use runners_shared::store::{MAX_LINKS_PER_RUNNER, back_off};
use runners_shared::time::Timestamp;
use runners_shared::{ApiError, AppState};

/// This function's routes; its `main` and `runnerctl serve` both mount exactly this.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v4/projects/{id}/runners", get(list).post(enable))
        .route("/api/v4/projects/{id}/runners/{runner_id}", delete(disable))
        .route(
            "/api/v4/projects/{id}/runners/reset_registration_token",
            post(reset_project_token),
        )
        .route("/api/v4/groups/{id}/runners", get(list_group))
        .route(
            "/api/v4/groups/{id}/runners/reset_registration_token",
            post(reset_group_token),
        )
        .with_state(state)
}

async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    path: PathParams,
    params: Params,
) -> Result<Response, ApiError> {
    let (caller, project) =
        access::caller_and_project(&state.store, &headers, &params, &path, Access::Read).await?;
    let sources: Vec<MemberOf> = std::iter::once(MemberOf::Project(project.id))
        .chain(project.group_ids.iter().map(|g| MemberOf::Group(*g)))
        .collect();
    let project = project.reference();
    let listed = Listed {
        sources,
        list: RunnerList::All,
        check: &|memberships| {
            access::check_project_level(caller, &project, memberships, MAINTAINER)
        },
    };
    listed
        .respond(&state, caller, &headers, &uri, &params)
        .await
}

/// `GET /groups/:id/runners`: the group's runners, its ancestors' and the instance's (never a
/// project's), for the group's Maintainers.
async fn list_group(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    path: PathParams,
    params: Params,
) -> Result<Response, ApiError> {
    let (caller, group) =
        access::caller_and_group(&state.store, &headers, &params, &path, Access::Read).await?;
    let group = group.reference();
    let sources: Vec<MemberOf> = std::iter::once(group.id)
        .chain(group.ancestor_ids.iter().copied())
        .map(MemberOf::Group)
        .collect();
    let listed = Listed {
        sources,
        list: RunnerList::Group,
        check: &|memberships| access::check_group_level(caller, &group, memberships, MAINTAINER),
    };
    listed
        .respond(&state, caller, &headers, &uri, &params)
        .await
}

/// A list of the runners linked to some projects and groups, with every instance runner:
/// what a project's and a group's runner lists are. The caller's memberships, the links and
/// the first instance runners are read together; `check` decides on the memberships before
/// anything is shown.
struct Listed<'a> {
    sources: Vec<MemberOf>,
    list: RunnerList,
    check: &'a (dyn Fn(&Memberships) -> Result<(), ApiError> + Sync),
}

impl Listed<'_> {
    async fn respond(
        self,
        state: &AppState,
        caller: Caller,
        headers: &HeaderMap,
        uri: &Uri,
        params: &Params,
    ) -> Result<Response, ApiError> {
        // Read now, reported after the access checks (GitLab's order).
        let mut reader = params.reader();
        let filter = RunnerFilter::read(&mut reader, self.list);
        let page = PageRequest::read(&mut reader);
        let timeout = state.settings.online_timeout_secs;
        let now = Timestamp::now();
        let counted = counted_parts(&filter, now, timeout);
        // The instance runners read beside the links: as many as a walk counts, or, for a
        // counted page near the start, as far as the page's end (a deeper one is placed by the
        // counts, whatever its position).
        let instance_limit = match &counted {
            None => Some(page.scan_limit()),
            Some(CountedList {
                instance, criteria, ..
            }) if criteria.is_empty() && !instance.is_empty() && page.end() <= HEAD_PAGE_END => {
                Some(page.end())
            }
            Some(_) => None,
        };
        // One criterion's instance runners are placed by its counts; several are intersected
        // from the member sets of their counts.
        let several = counted
            .as_ref()
            .is_some_and(|counted| counted.criteria.len() > 1);
        let (memberships, linked, counts, instance_runners) = futures_util::future::join4(
            access::memberships_of(&state.store, caller),
            state.store.linked_runner_ids(&self.sources),
            OptionFuture::from(counted.as_ref().map(|counted| async move {
                match several {
                    true => state
                        .store
                        .runners_meeting(&counted.instance, &counted.criteria)
                        .await
                        .map(Counted::Meeting),
                    false => state
                        .store
                        .criteria_counts(&counted.criteria)
                        .await
                        .map(Counted::Counts),
                }
            })),
            OptionFuture::from(instance_limit.map(|limit| {
                let limit = usize::try_from(limit).unwrap_or(usize::MAX);
                state.store.runners_of_type(RunnerType::Instance, limit)
            })),
        )
        .await;
        let (memberships, linked) = (memberships?, linked?);
        let (counts, instance_runners) = (counts.transpose()?, instance_runners.transpose()?);
        (self.check)(&memberships)?;
        reader.finish()?;
        let counted_page = match (counted, counts) {
            (Some(counted), Some(Counted::Counts(counts))) => {
                let listed = if counted.linked {
                    linked.clone()
                } else {
                    Vec::new()
                };
                let types = &counted.instance;
                match (counted.criteria.as_slice(), counts.as_slice()) {
                    ([], [counts]) => {
                        let first = instance_runners
                            .as_ref()
                            .map(|(runners, _)| runners.as_slice());
                        Some(
                            state
                                .store
                                .counted_page(listed, types, None, counts, first, page)
                                .await?,
                        )
                    }
                    ([criterion], [counts]) => Some(
                        state
                            .store
                            .faceted_page(listed, types, criterion, counts, page)
                            .await?,
                    ),
                    _ => None,
                }
            }
            (Some(counted), Some(Counted::Meeting(Some(instance_matches)))) => {
                // The list's own runners are read whole and checked; the page is cut from
                // them and the instance runners that meet every criterion.
                let listed = match counted.linked {
                    true => state.store.get_runners(&linked).await?,
                    false => Vec::new(),
                };
                let meets = |runner: &Runner| {
                    counted
                        .criteria
                        .iter()
                        .all(|criterion| criterion.admits(runner))
                };
                let own: Vec<Runner> = listed.into_iter().filter(meets).collect();
                let matching: Vec<i64> = own
                    .iter()
                    .map(|runner| runner.id)
                    .chain(instance_matches)
                    .collect();
                let instance = &counted.instance;
                let keep = |runner: &Runner| {
                    meets(runner)
                        && (own.iter().any(|r| r.id == runner.id)
                            || instance.contains(&runner.runner_type))
                };
                Some(
                    state
                        .store
                        .page_of_matches(matching, &own, keep, page)
                        .await?,
                )
            }
            _ => None,
        };
        let (runners, info) = match counted_page {
            Some(found) => found,
            None => {
                // A walk: the instance runners up to the scan limit, unless read already.
                let instance_runners = match instance_runners {
                    Some(read) => read,
                    None => {
                        let limit = usize::try_from(page.scan_limit()).unwrap_or(usize::MAX);
                        state
                            .store
                            .runners_of_type(RunnerType::Instance, limit)
                            .await?
                    }
                };
                let (instance_runners, instance_exhausted) = instance_runners;
                let ids: Vec<i64> = linked
                    .into_iter()
                    .chain(instance_runners.iter().map(|r| r.id))
                    .collect();
                state
                    .store
                    .runner_page(
                        ids,
                        &instance_runners,
                        !instance_exhausted,
                        &filter,
                        page,
                        now,
                        timeout,
                    )
                    .await?
            }
        };
        let entities: Vec<RunnerEntity<'_>> = runners
            .iter()
            .map(|r| RunnerEntity::new(r, now, timeout))
            .collect();
        Ok(paginated(
            &entities,
            &info,
            &base_url(headers, &state.settings),
            uri,
        ))
    }
}

/// What a counted list reads beside the links: one criterion's (or no criterion's) counts, or
/// the instance runners that meet several (`None`: their member sets are not complete).
enum Counted {
    Counts(Vec<RunnerCounts>),
    Meeting(Option<Vec<i64>>),
}

/// How a project's or group's list is counted rather than walked: when the filter asks for
/// types that take either all linked runners (group and project runners) or none, and for at
/// most [`MAX_INTERSECTED_CRITERIA`] criteria (several are intersected from the member sets
/// of their counts).
struct CountedList {
    /// Whether the linked runners are listed.
    linked: bool,
    /// The instance type, if it is listed.
    instance: Vec<RunnerType>,
    criteria: Vec<Criterion>,
}

fn counted_parts(
    filter: &RunnerFilter,
    now: Timestamp,
    online_timeout_secs: i64,
) -> Option<CountedList> {
    let (types, criteria) = filter.counted_criteria(now, online_timeout_secs)?;
    if criteria.len() > MAX_INTERSECTED_CRITERIA {
        return None;
    }
    let linked = [RunnerType::Group, RunnerType::Project].map(|t| types.contains(&t));
    let instance: Vec<RunnerType> = types
        .into_iter()
        .filter(|t| *t == RunnerType::Instance)
        .collect();
    let linked = match linked {
        [true, true] => true,
        [false, false] => false,
        _ => return None,
    };
    Some(CountedList {
        linked,
        instance,
        criteria,
    })
}

/// `POST /projects/:id/runners/reset_registration_token` (Maintainer+) and
/// `POST /groups/:id/runners/reset_registration_token` (Owner): 201 with the new token.
async fn reset_project_token(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams,
    params: Params,
) -> Result<Response, ApiError> {
    reset_token(&state, &headers, &path, &params, |id| {
        ResetTarget::Project(id)
    })
    .await
}

async fn reset_group_token(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams,
    params: Params,
) -> Result<Response, ApiError> {
    reset_token(&state, &headers, &path, &params, |id| {
        ResetTarget::Group(id)
    })
    .await
}

async fn reset_token(
    state: &AppState,
    headers: &HeaderMap,
    path: &PathParams,
    params: &Params,
    target: fn(&str) -> ResetTarget<'_>,
) -> Result<Response, ApiError> {
    let caller = authenticate(&state.store, headers, params, Access::Write).await?;
    // An `:id` that is not UTF-8 names nothing: the lookup answers 404.
    let id = path.get("id").unwrap_or_default();
    let answer = registration_tokens::reset(&state.store, caller, target(id)).await?;
    Ok(json_response(StatusCode::CREATED, &answer))
}

fn already_enabled() -> ApiError {
    let mut errors = ValidationErrors::default();
    errors.add(
        "assign_to",
        "Validation failed: Runner has already been taken",
    );
    ApiError::Validation(errors)
}

async fn enable(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams,
    params: Params,
) -> Result<Response, ApiError> {
    let (caller, project) =
        access::caller_and_project(&state.store, &headers, &params, &path, Access::Write).await?;
    let mut reader = params.reader();
    let runner_id = if params.contains("runner_id") {
        reader.int("runner_id")
    } else {
        reader.problem("runner_id is missing");
        None
    };
    let (memberships, runner) = futures_util::future::join(
        access::memberships_of(&state.store, caller),
        OptionFuture::from(runner_id.map(|id| state.store.get_runner(id))),
    )
    .await;
    let memberships = memberships?;
    access::check_project_level(caller, &project.reference(), &memberships, MAINTAINER)?;
    reader.finish()?;
    let mut runner = runner
        .transpose()?
        .flatten()
        .ok_or(ApiError::NotFound("Runner"))?;
    let target = project.reference();
    for attempt in 0..RUNNER_WRITE_ATTEMPTS {
        if runner.runner_type == RunnerType::Group {
            return Err(ApiError::forbidden_because("Runner is a group runner"));
        }
        if !caller.admin {
            if runner.locked {
                return Err(ApiError::forbidden_because("Runner is locked"));
            }
            if !access::owns(&runner, &memberships) {
                return Err(ApiError::forbidden_because("No access granted"));
            }
        }
        if runner.project_ids().any(|id| id == project.id) {
            return Err(already_enabled());
        }
        if runner.projects.len() >= MAX_LINKS_PER_RUNNER {
            let mut errors = ValidationErrors::default();
            errors.add(
                "assign_to",
                format!("a runner can be enabled in at most {MAX_LINKS_PER_RUNNER} projects"),
            );
            return Err(ApiError::Validation(errors));
        }
        let now = Timestamp::now();
        if state.store.enable_runner(&runner, &target, now).await? == LinkChange::Done {
            runner.runner_type = RunnerType::Project;
            runner.projects.push(target);
            runner.updated_at = now;
            let entity = RunnerEntity::new(&runner, now, state.settings.online_timeout_secs);
            return Ok(json_response(StatusCode::CREATED, &entity));
        }
        back_off(attempt + 1).await;
        runner = state
            .store
            .get_runner(runner.id)
            .await?
            .ok_or(ApiError::NotFound("Runner"))?;
    }
    Err(ApiError::internal(format!(
        "runner {} kept changing while being enabled",
        runner.id
    )))
}

async fn disable(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams,
    params: Params,
) -> Result<StatusCode, ApiError> {
    let (caller, project) =
        access::caller_and_project(&state.store, &headers, &params, &path, Access::Write).await?;
    let runner_id = path
        .get("runner_id")
        .and_then(|raw| raw.parse::<i64>().ok());
    let unmodified_since = if_unmodified_since(&headers);
    // The link's time is what `If-Unmodified-Since` compares; read it only when asked.
    let linked_at = runner_id
        .filter(|_| unmodified_since.is_some())
        .map(|id| state.store.project_link_created_at(project.id, id));
    let (memberships, runner, linked_at) = futures_util::future::join3(
        access::memberships_of(&state.store, caller),
        OptionFuture::from(runner_id.map(|id| state.store.get_runner(id))),
        OptionFuture::from(linked_at),
    )
    .await;
    access::check_project_level(caller, &project.reference(), &memberships?, MAINTAINER)?;
    if runner_id.is_none() {
        return Err(ApiError::InvalidParams(vec!["runner_id is invalid".into()]));
    }
    let mut runner = runner.transpose()?.flatten();
    let linked_at = linked_at.transpose()?.flatten();
    for attempt in 0..RUNNER_WRITE_ATTEMPTS {
        let current = runner
            .filter(|r| r.project_ids().any(|id| id == project.id))
            .ok_or(ApiError::NotFound("Runner"))?;
        if current.projects.len() == 1 {
            return Err(ApiError::forbidden_because(
                "Only one project associated with the runner. Please remove the runner instead",
            ));
        }
        // No link read although the runner lists the project: it was enabled between the two
        // reads. The runner's time is then the stand-in; it is never older than its links.
        if modified_since(linked_at.unwrap_or(current.updated_at), unmodified_since) {
            return Err(ApiError::PreconditionFailed);
        }
        if state
            .store
            .disable_runner(&current, project.id, Timestamp::now())
            .await?
            == LinkChange::Done
        {
            return Ok(StatusCode::NO_CONTENT);
        }
        back_off(attempt + 1).await;
        runner = state.store.get_runner(current.id).await?;
    }
    Err(ApiError::internal(
        "runner kept changing while being disabled",
    ))
}
