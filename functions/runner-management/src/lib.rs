//! The user-facing runner endpoints, authenticated with personal access tokens:
//! `GET /runners` (owned), `GET /runners/all` (admin), `GET/PUT/DELETE /runners/:id`,
//! `GET /runners/:id/jobs`, `POST /runners/:id/reset_authentication_token`, runner creation
//! (`POST /user/runners`), and the two endpoints clients call first, `GET /user` and
//! `GET /version`.
//!
//! Every handler checks in GitLab's order: authentication, parameters, then lookups and
//! permissions, then model validation.

mod owned;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use axum::routing::{get, post};
use runners_shared::access::{self, Memberships};
use runners_shared::auth::{Access, Caller, authenticate};
use runners_shared::entities::{
    CurrentUserEntity, RunnerDetailsEntity, RunnerEntity, RunnerManagerEntity,
};
use runners_shared::error::json_response;
use runners_shared::http::{
    PathParams, base_url, if_unmodified_since, job_entities_response, paginated, path_id,
};
use runners_shared::pagination::PageRequest;
use runners_shared::params::Params;
use runners_shared::registration_tokens::{self, ResetTarget};
use runners_shared::runner::{AccessLevel, Runner, RunnerChanges, RunnerType};
use runners_shared::runner_filter::{RunnerFilter, RunnerList};
use runners_shared::runner_tokens::modified_since;
use runners_shared::store::RUNNER_WRITE_ATTEMPTS;
use runners_shared::store::back_off;
use runners_shared::store::directory::JOB_STATUSES;
use runners_shared::store::listing::MAX_INTERSECTED_CRITERIA;
use runners_shared::store::lists::RunnerIndex;
use runners_shared::time::Timestamp;
use runners_shared::user_runners::{CreateRunnerRequest, create_runner};
use runners_shared::{ApiError, AppState};
use serde_json::json;

/// This function's routes; its `main` and `runnerctl serve` both mount exactly this.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v4/runners", get(list_owned))
        .route("/api/v4/runners/all", get(list_all))
        .route(
            "/api/v4/runners/reset_registration_token",
            post(reset_registration_token),
        )
        .route("/api/v4/runners/{id}", get(show).put(update).delete(remove))
        .route("/api/v4/runners/{id}/jobs", get(jobs))
        .route("/api/v4/runners/{id}/managers", get(managers))
        .route(
            "/api/v4/runners/{id}/reset_authentication_token",
            post(reset_token),
        )
        .route("/api/v4/user", get(current_user))
        .route("/api/v4/user/runners", post(create))
        .route("/api/v4/version", get(version))
        .with_state(state)
}

fn entities<'a>(runners: &'a [Runner], state: &AppState) -> Vec<RunnerEntity<'a>> {
    let now = Timestamp::now();
    runners
        .iter()
        .map(|r| RunnerEntity::new(r, now, state.settings.online_timeout_secs))
        .collect()
}

async fn list_owned(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    params: Params,
) -> Result<Response, ApiError> {
    let caller = authenticate(&state.store, &headers, &params, Access::Read).await?;
    let mut reader = params.reader();
    let filter = RunnerFilter::read(&mut reader, RunnerList::Owned);
    let page = PageRequest::read(&mut reader);
    reader.finish()?;
    let (runners, info) = owned::page(&state, caller, &filter, page).await?;
    Ok(paginated(
        &entities(&runners, &state),
        &info,
        &base_url(&headers, &state.settings),
        &uri,
    ))
}

async fn list_all(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    params: Params,
) -> Result<Response, ApiError> {
    let mut reader = params.reader();
    let filter = RunnerFilter::read(&mut reader, RunnerList::All);
    let page = PageRequest::read(&mut reader);
    // Counted: a filter on types and criteria (tags, active or paused, never contacted,
    // online, offline or stale). One criterion's page is placed by its counts; several are
    // intersected from the member sets of their counts. Either is read beside the caller's
    // token, so that a page costs at most three round trips; they are shown to admins only.
    let now = Timestamp::now();
    let timeout = state.settings.online_timeout_secs;
    let counted = filter
        .counted_criteria(now, timeout)
        .filter(|(_, criteria)| criteria.len() <= MAX_INTERSECTED_CRITERIA);
    let several = counted
        .as_ref()
        .is_some_and(|(_, criteria)| criteria.len() > 1);
    let (caller, counts, meeting) = futures_util::future::try_join3(
        authenticate(&state.store, &headers, &params, Access::Read),
        async {
            match &counted {
                Some((_, criteria)) if !several => state.store.criteria_counts(criteria).await,
                _ => Ok(Vec::new()),
            }
        },
        async {
            match &counted {
                Some((types, criteria)) if several => {
                    state.store.runners_meeting(types, criteria).await
                }
                _ => Ok(None),
            }
        },
    )
    .await?;
    reader.finish()?;
    if !caller.admin {
        return Err(ApiError::Forbidden);
    }
    let found = match (&counted, counts.as_slice(), meeting) {
        // The page is found from the counts, whatever its position.
        (Some((types, criteria)), [counts], _) => Some(
            state
                .store
                .counted_page(Vec::new(), types, criteria.first(), counts, None, page)
                .await?,
        ),
        (Some((types, criteria)), _, Some(matching)) => {
            let meets = |runner: &Runner| {
                types.contains(&runner.runner_type)
                    && criteria.iter().all(|criterion| criterion.admits(runner))
            };
            Some(
                state
                    .store
                    .page_of_matches(matching, &[], meets, page)
                    .await?,
            )
        }
        _ => None,
    };
    let (runners, info) = match found {
        Some(found) => found,
        None => {
            // A filter on the runners' attributes walks them in id order.
            let index = match filter.single_type() {
                Some(runner_type) => RunnerIndex::OfType(runner_type),
                None => RunnerIndex::All,
            };
            let (runners, scanned) = state
                .store
                .runners_in_index(index, page, |facts| filter.matches(facts, now, timeout))
                .await?;
            let (_, info) = page.cut(scanned.matches, scanned.exhausted);
            (runners, info)
        }
    };
    Ok(paginated(
        &entities(&runners, &state),
        &info,
        &base_url(&headers, &state.settings),
        &uri,
    ))
}

async fn memberships_for(
    state: &AppState,
    caller: Caller,
    runner: &Runner,
) -> Result<Memberships, ApiError> {
    if caller.admin || runner.runner_type == RunnerType::Instance {
        return Ok(Memberships::default());
    }
    let sources = access::membership_sources(runner);
    Ok(state
        .store
        .memberships_in(caller.user_id, &sources)
        .await?
        .into_iter()
        .collect())
}

/// The runner's details as `caller` may see them; `busy`: a job runs on it.
fn details(
    state: &AppState,
    headers: &HeaderMap,
    caller: Caller,
    runner: &Runner,
    memberships: &Memberships,
    busy: bool,
) -> Response {
    let entity = RunnerDetailsEntity::new(
        runner,
        Timestamp::now(),
        state.settings.online_timeout_secs,
        access::visible_projects(caller, runner, memberships),
        access::visible_groups(caller, runner, memberships),
        &base_url(headers, &state.settings),
    )
    .with_busy(busy);
    let entity = if access::check_update(caller, runner, memberships).is_ok() {
        entity.with_maintenance_note(runner)
    } else {
        entity
    };
    json_response(StatusCode::OK, &entity)
}

/// The runner `caller` may read (404, then 403), with `beside` (something else of the runner's)
/// read at the same time, and the memberships that decided.
async fn readable_runner<T>(
    state: &AppState,
    caller: Caller,
    id: i64,
    beside: impl Future<Output = Result<T, ApiError>>,
) -> Result<(Runner, Memberships, T), ApiError> {
    let (runner, beside) = futures_util::future::join(state.store.get_runner(id), beside).await;
    let runner = runner?.ok_or(ApiError::NotFound("Runner"))?;
    let memberships = memberships_for(state, caller, &runner).await?;
    access::check_read(caller, &runner, &memberships)?;
    Ok((runner, memberships, beside?))
}

fn runner_id(path: &PathParams) -> Result<i64, ApiError> {
    path_id(path.get("id"), "id")
}

async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams,
    params: Params,
) -> Result<Response, ApiError> {
    let caller = authenticate(&state.store, &headers, &params, Access::ReadRunner).await?;
    let id = runner_id(&path)?;
    let (runner, memberships, busy) =
        readable_runner(&state, caller, id, state.store.runner_is_busy(id)).await?;
    Ok(details(
        &state,
        &headers,
        caller,
        &runner,
        &memberships,
        busy,
    ))
}

/// `GET /runners/:id/managers`: every host that serves the runner's token (not paginated, as
/// in GitLab). The runner and its managers are read together.
async fn managers(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams,
    params: Params,
) -> Result<Response, ApiError> {
    let caller = authenticate(&state.store, &headers, &params, Access::ReadRunner).await?;
    let id = runner_id(&path)?;
    let (_, _, managers) =
        readable_runner(&state, caller, id, state.store.runner_managers(id)).await?;
    let now = Timestamp::now();
    let entities: Vec<RunnerManagerEntity> = managers
        .iter()
        .map(|m| RunnerManagerEntity::new(m, now, state.settings.online_timeout_secs))
        .collect();
    Ok(json_response(StatusCode::OK, &entities))
}

const UPDATABLE: &str =
    "description, active, tag_list, run_untagged, locked, access_level, maximum_timeout";

fn read_changes(params: &Params, path: &PathParams) -> Result<(i64, RunnerChanges), ApiError> {
    let mut p = params.reader();
    let id = runner_id(path).ok();
    if id.is_none() {
        p.problem("id is invalid");
    }
    let description = p.string("description");
    let active = p.bool("active");
    let paused = p.bool("paused");
    let tag_list = p.tags("tag_list");
    let run_untagged = p.bool("run_untagged");
    let locked = p.bool("locked");
    let access_level = p.one_of("access_level", &AccessLevel::NAMES);
    let maximum_timeout = p.int("maximum_timeout");
    let maintenance_note = p
        .string("maintenance_note")
        .or_else(|| p.string("maintainer_note"));
    p.mutually_exclusive("active", "paused");
    let sent = [
        "description",
        "active",
        "paused",
        "tag_list",
        "run_untagged",
        "locked",
        "access_level",
        "maximum_timeout",
        "maintenance_note",
        "maintainer_note",
    ];
    if !sent.iter().any(|key| params.contains(key)) {
        p.problem(format!(
            "{UPDATABLE} are missing, at least one parameter must be provided"
        ));
    }
    p.finish()?;
    let changes = RunnerChanges {
        description,
        active: active.or(paused.map(|p| !p)),
        locked,
        run_untagged,
        tag_list,
        access_level: access_level.as_deref().and_then(AccessLevel::parse),
        maximum_timeout,
        maintenance_note,
    };
    Ok((id.unwrap_or_default(), changes))
}

async fn update(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams,
    params: Params,
) -> Result<Response, ApiError> {
    let caller = authenticate(&state.store, &headers, &params, Access::ManageRunner).await?;
    let (id, changes) = read_changes(&params, &path)?;
    let mut memberships = None;
    for attempt in 0..RUNNER_WRITE_ATTEMPTS {
        if attempt > 0 {
            back_off(attempt).await;
        }
        let runner = state
            .store
            .get_runner(id)
            .await?
            .ok_or(ApiError::NotFound("Runner"))?;
        // The memberships do not change with the runner's attributes: read them once.
        let granted = match memberships.take() {
            Some(m) => m,
            None => memberships_for(&state, caller, &runner).await?,
        };
        access::check_update(caller, &runner, &granted)?;
        let mut merged = runner.clone();
        merged.apply(changes.clone());
        merged.validate()?;
        // Only a concurrent change that makes this update invalid comes back here, to be
        // validated against what is stored now.
        let (updated, busy) = futures_util::future::join(
            state
                .store
                .update_runner(&runner, &changes, Timestamp::now()),
            state.store.runner_is_busy(id),
        )
        .await;
        if let Some(updated) = updated? {
            return Ok(details(&state, &headers, caller, &updated, &granted, busy?));
        }
        memberships = Some(granted);
    }
    Err(ApiError::internal(format!(
        "runner {id} kept changing while being updated"
    )))
}

async fn remove(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams,
    params: Params,
) -> Result<StatusCode, ApiError> {
    let caller = authenticate(&state.store, &headers, &params, Access::ManageRunner).await?;
    let id = runner_id(&path)?;
    let mut memberships = None;
    for attempt in 0..RUNNER_WRITE_ATTEMPTS {
        if attempt > 0 {
            back_off(attempt).await;
        }
        let (runner, managers) = state
            .store
            .runner_and_managers(id)
            .await?
            .ok_or(ApiError::NotFound("Runner"))?;
        let granted = match memberships.take() {
            Some(m) => m,
            None => memberships_for(&state, caller, &runner).await?,
        };
        access::check_delete(caller, &runner, &granted)?;
        if modified_since(runner.updated_at, if_unmodified_since(&headers)) {
            return Err(ApiError::PreconditionFailed);
        }
        if state.store.delete_runner(&runner, &managers).await? {
            return Ok(StatusCode::NO_CONTENT);
        }
        memberships = Some(granted);
    }
    Err(ApiError::internal(format!(
        "runner {id} kept changing while being deleted"
    )))
}

async fn jobs(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    path: PathParams,
    params: Params,
) -> Result<Response, ApiError> {
    let caller = authenticate(&state.store, &headers, &params, Access::ReadRunner).await?;
    let mut p = params.reader();
    let id = runner_id(&path).ok();
    if id.is_none() {
        p.problem("id is invalid");
    }
    let status = p.one_of("status", &JOB_STATUSES);
    let order_by = p.one_of("order_by", &["id"]);
    let sort = p.one_of("sort", &["asc", "desc"]);
    let page = PageRequest::read(&mut p);
    p.finish()?;
    let id = id.unwrap_or_default();
    // Without `order_by` the order is id ascending whatever `sort` says (GitLab's behaviour);
    // with it, `sort` defaults to descending.
    let descending = order_by.is_some() && sort.as_deref() != Some("asc");
    // The page is found from the runner's job counts (per status too): a page near the start
    // is read directly beside the counts (for one status, its ids); otherwise the keys of the
    // buckets the page overlaps are read beside the permission check.
    let store = &state.store;
    let (runner, counts, head) = futures_util::future::join3(
        store.get_runner(id),
        store.runner_job_counts(id),
        store.runner_jobs_head(id, status.as_deref(), descending, page),
    )
    .await;
    let runner = runner?.ok_or(ApiError::NotFound("Runner"))?;
    let (counts, head) = (counts?, head?);
    let (memberships, (jobs, info)) = futures_util::future::try_join(
        memberships_for(&state, caller, &runner),
        store.counted_runner_jobs(id, &counts, status.as_deref(), head, descending, page),
    )
    .await?;
    access::check_read_jobs(caller, &runner, &memberships)?;
    Ok(job_entities_response(
        &jobs,
        &info,
        &headers,
        &state.settings,
        &uri,
    ))
}

/// `POST /runners/reset_registration_token`: an admin replaces the instance registration token
/// (201 with the new one).
async fn reset_registration_token(
    State(state): State<AppState>,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, ApiError> {
    let caller = authenticate(&state.store, &headers, &params, Access::Write).await?;
    let answer = registration_tokens::reset(&state.store, caller, ResetTarget::Instance).await?;
    Ok(json_response(StatusCode::CREATED, &answer))
}

/// `POST /user/runners`: a user creates a runner and gets its `glrt-` token (201).
async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, ApiError> {
    let caller = authenticate(&state.store, &headers, &params, Access::CreateRunner).await?;
    let request = CreateRunnerRequest::from_params(&params)?;
    let answer = create_runner(&state.store, caller, request).await?;
    Ok(json_response(StatusCode::CREATED, &answer))
}

async fn current_user(
    State(state): State<AppState>,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, ApiError> {
    let caller = authenticate(&state.store, &headers, &params, Access::Read).await?;
    let user = state
        .store
        .get_user(caller.user_id)
        .await?
        .ok_or(ApiError::Unauthorized)?;
    Ok(json_response(
        StatusCode::OK,
        &CurrentUserEntity::new(&user, &base_url(&headers, &state.settings)),
    ))
}

/// The GitLab version whose API this implements, and this build.
pub const GITLAB_VERSION: &str = "12.10.0";

async fn version(
    State(state): State<AppState>,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, ApiError> {
    authenticate(&state.store, &headers, &params, Access::Read).await?;
    let revision = option_env!("GIT_REVISION").unwrap_or(env!("CARGO_PKG_VERSION"));
    Ok(json_response(
        StatusCode::OK,
        &json!({"version": GITLAB_VERSION, "revision": revision}),
    ))
}

/// `POST /runners/:id/reset_authentication_token`: whoever may update the runner gives it a new
/// token (201); the old one stops working at once. The runner, the caller's memberships and the
/// settings (token expiry) are read together: 3 round trips with the write.
async fn reset_token(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams,
    params: Params,
) -> Result<Response, ApiError> {
    let caller = authenticate(&state.store, &headers, &params, Access::ManageRunner).await?;
    let id = runner_id(&path)?;
    let (runner, memberships, settings) = futures_util::future::join3(
        state.store.get_runner(id),
        access::memberships_of(&state.store, caller),
        state.store.instance_settings(),
    )
    .await;
    let mut runner = runner?.ok_or(ApiError::NotFound("Runner"))?;
    access::check_update(caller, &runner, &memberships?)?;
    let expiry = settings?.token_expiry;
    // Two resets at once both succeed, the later one's token standing.
    for attempt in 0..RUNNER_WRITE_ATTEMPTS {
        if attempt > 0 {
            back_off(attempt).await;
            runner = state
                .store
                .get_runner(id)
                .await?
                .ok_or(ApiError::NotFound("Runner"))?;
        }
        if let Some(answer) =
            runners_shared::runner_tokens::rotate_token(&state.store, &runner, &expiry).await?
        {
            return Ok(json_response(StatusCode::CREATED, &answer));
        }
    }
    Err(ApiError::Unavailable(format!(
        "runner {id}'s token kept changing while being reset"
    )))
}
