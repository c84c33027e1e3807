//! Jobs: what a user enqueues (`POST /projects/:id/jobs`, the extension of `jobs-api.md`), which
//! runner may take which job (GitLab's `Ci::RegisterJobService` filters), and the payload a
//! runner gets (`job-protocol.md` §1.6-1.8: every key present, the variables every real client
//! needs).

use crate::error::{ApiError, ValidationErrors};
use crate::params::{ParamReader, Params};
use crate::runner::{AccessLevel, MAX_TAGS, Runner, RunnerType};
use crate::store::directory::{Job, Project, ProjectSettings, User};
use crate::store::{IdSequence, Store, keys};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub const PENDING: &str = "pending";
pub const RUNNING: &str = "running";
pub const SUCCESS: &str = "success";
pub const FAILED: &str = "failed";
pub const CANCELED: &str = "canceled";

/// GitLab 12's failure reasons; any other reason a runner sends is stored as `unknown_failure`.
pub const FAILURE_REASONS: [&str; 13] = [
    "unknown_failure",
    "script_failure",
    "api_failure",
    "stuck_or_timeout_failure",
    "runner_system_failure",
    "missing_dependency_failure",
    "runner_unsupported",
    "stale_schedule",
    "job_execution_timeout",
    "archived_failure",
    "unmet_prerequisites",
    "scheduler_failure",
    "data_integrity_failure",
];

/// GitLab's bounds on a job timeout: 10 minutes to one month.
pub const MIN_JOB_TIMEOUT: i64 = 600;
pub const MAX_JOB_TIMEOUT: i64 = 2_592_000;
const MAX_NAME_CHARS: usize = 255;
const ZERO_SHA: &str = "0000000000000000000000000000000000000000";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobVariable {
    pub key: String,
    pub value: String,
    #[serde(default)]
    pub masked: bool,
    #[serde(default)]
    pub file: bool,
}

/// What a runner needs to run a job, fixed when it is enqueued.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobWork {
    pub before_script: Vec<String>,
    pub script: Vec<String>,
    pub after_script: Vec<String>,
    pub variables: Vec<JobVariable>,
    pub image: Option<String>,
    /// Seconds.
    pub timeout: i64,
    pub allow_failure: bool,
    pub tag_list: Vec<String>,
    /// The ref matched the project's `protected_refs` when the job was created.
    pub protected: bool,
    /// The commit to check out; the ref name when none was given.
    pub sha: Option<String>,
    pub pipeline_id: i64,
    /// What runners clone (the project's `repository_url` when the job was created).
    pub repository_url: Option<String>,
}

/// A validated `POST /projects/:id/jobs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnqueueRequest {
    pub name: String,
    pub stage: String,
    pub ref_name: String,
    pub timeout: Option<i64>,
    pub work: JobWork,
}

fn is_variable_key(key: &str) -> bool {
    !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// `variables` as `[{key, value, masked?, file?}]` or `{KEY: value}`; `None` when malformed.
fn read_variables(value: &Value) -> Option<Vec<JobVariable>> {
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    let variables: Vec<JobVariable> = match value {
        Value::Object(map) => map
            .iter()
            .map(|(key, value)| {
                Some(JobVariable {
                    key: key.clone(),
                    value: text(value)?,
                    ..JobVariable::default()
                })
            })
            .collect::<Option<_>>()?,
        Value::Array(items) => items
            .iter()
            .map(|item| {
                let flag = |name: &str| match item.get(name) {
                    None | Some(Value::Null) => Some(false),
                    Some(v) => crate::params::parse_bool(&text(v)?).ok().flatten(),
                };
                Some(JobVariable {
                    key: item.get("key")?.as_str()?.to_owned(),
                    value: text(item.get("value")?)?,
                    masked: flag("masked")?,
                    file: flag("file")?,
                })
            })
            .collect::<Option<_>>()?,
        _ => return None,
    };
    variables
        .iter()
        .all(|v| is_variable_key(&v.key))
        .then_some(variables)
}

impl EnqueueRequest {
    /// Reads and validates the parameters; `protected` is decided later, from the project.
    pub fn from_params(params: &Params) -> Result<Self, ApiError> {
        let mut p = params.reader();
        let name = p.required_string("name");
        let script = required_strings(&mut p, params, "script");
        let stage = p.string("stage");
        let before_script = p.strings("before_script").unwrap_or_default();
        let after_script = p.strings("after_script").unwrap_or_default();
        let ref_name = p.string("ref");
        let sha = p.string("sha");
        let tag_list = p.tags("tag_list").unwrap_or_default();
        let variables = match params.get("variables") {
            None | Some(Value::Null) => Vec::new(),
            Some(value) => read_variables(value).unwrap_or_else(|| {
                p.problem("variables is invalid");
                Vec::new()
            }),
        };
        let image = p.string("image");
        let timeout = p.int("timeout");
        let allow_failure = p.bool("allow_failure").unwrap_or(false);
        if name
            .as_deref()
            .is_some_and(|n| n.trim().is_empty() || n.chars().count() > MAX_NAME_CHARS)
        {
            p.problem("name is invalid");
        }
        if script.as_ref().is_some_and(Vec::is_empty) {
            p.problem("script is invalid");
        }
        if sha
            .as_deref()
            .is_some_and(|s| s.len() != 40 || !s.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            p.problem("sha is invalid");
        }
        if timeout.is_some_and(|t| !(MIN_JOB_TIMEOUT..=MAX_JOB_TIMEOUT).contains(&t)) {
            p.problem("timeout does not have a valid value");
        }
        if ref_name.as_deref().is_some_and(|r| r.trim().is_empty()) {
            p.problem("ref is invalid");
        }
        p.finish()?;
        let mut errors = ValidationErrors::default();
        if tag_list.len() > MAX_TAGS {
            errors.add(
                "tag_list",
                format!("Too many tags specified. Please limit the number of tags to {MAX_TAGS}"),
            );
        }
        errors.into_result()?;
        Ok(Self {
            name: name.unwrap_or_default(),
            stage: stage
                .filter(|s| !s.trim().is_empty())
                .unwrap_or_else(|| "test".into()),
            ref_name: ref_name.unwrap_or_else(|| "main".into()),
            timeout,
            work: JobWork {
                before_script,
                script: script.unwrap_or_default(),
                after_script,
                variables,
                image: image.filter(|i| !i.is_empty()),
                timeout: 0,
                allow_failure,
                tag_list,
                protected: false,
                sha,
                pipeline_id: 0,
                repository_url: None,
            },
        })
    }

    /// Completes the work with what the project decides: the timeout default, whether the ref
    /// is protected, and the repository.
    pub fn settle(&mut self, settings: &ProjectSettings) {
        self.work.timeout = self.timeout.unwrap_or(settings.build_timeout);
        self.work.protected = settings.protects(&self.ref_name);
        self.work.repository_url = settings.repository_url.clone();
    }
}

fn required_strings(p: &mut ParamReader<'_>, params: &Params, key: &str) -> Option<Vec<String>> {
    if !params.contains(key) {
        p.problem(format!("{key} is missing"));
        return None;
    }
    p.strings(key)
}

/// GitLab's filters for a runner and a pending job (`can_pick?`): the job's tags are a subset of
/// the runner's; an untagged job needs `run_untagged`; a `ref_protected` runner takes only
/// protected jobs. `locked` never filters; a paused runner never gets this far.
pub fn can_take(runner: &Runner, tag_list: &[String], protected: bool) -> bool {
    let tags_fit = tag_list.iter().all(|tag| runner.tag_list.contains(tag));
    let untagged_ok = !tag_list.is_empty() || runner.run_untagged;
    let protection_ok = runner.access_level != AccessLevel::RefProtected || protected;
    tags_fit && untagged_ok && protection_ok
}

/// The timeout a runner is told: the job's, capped by the runner's `maximum_timeout`.
pub fn effective_timeout(work: &JobWork, runner: &Runner) -> i64 {
    runner
        .maximum_timeout
        .map_or(work.timeout, |max| work.timeout.min(max))
}

/// A failure reason as stored: GitLab 12's names, anything else `unknown_failure`.
pub fn failure_reason(sent: Option<&str>) -> &'static str {
    sent.and_then(|reason| FAILURE_REASONS.iter().find(|known| **known == reason))
        .copied()
        .unwrap_or("unknown_failure")
}

fn variable(key: &str, value: impl Into<String>, public: bool, masked: bool) -> Value {
    json!({"key": key, "value": value.into(), "public": public, "masked": masked})
}

/// The 201 answer of `jobs/request`: every key of GitLab 12's payload, with what the Go runner,
/// gitlab-python-runner and gitlab-runner-api each need (`job-protocol.md` §1.7).
pub fn payload(job: &Job, work: &JobWork, runner: &Runner, token: &str, base_url: &str) -> Value {
    let project = &job.project;
    let project_url = format!("{base_url}/{}", project.path_with_namespace);
    let job_url = format!("{project_url}/-/jobs/{}", job.id);
    let ref_name = job.ref_name.clone().unwrap_or_else(|| "main".into());
    let sha = work.sha.clone().unwrap_or_else(|| ref_name.clone());
    let timeout = effective_timeout(work, runner);
    let mut variables = vec![
        variable("CI", "true", true, false),
        variable("GITLAB_CI", "true", true, false),
        variable("CI_SERVER_URL", base_url, true, false),
        variable("CI_JOB_ID", job.id.to_string(), true, false),
        variable(
            "CI_JOB_NAME",
            job.name.clone().unwrap_or_default(),
            true,
            false,
        ),
        variable(
            "CI_JOB_STAGE",
            job.stage.clone().unwrap_or_default(),
            true,
            false,
        ),
        variable("CI_JOB_TOKEN", token, false, true),
        variable("CI_JOB_URL", job_url, true, false),
        variable("CI_PIPELINE_ID", work.pipeline_id.to_string(), true, false),
        variable(
            "CI_PIPELINE_URL",
            format!("{project_url}/-/pipelines/{}", work.pipeline_id),
            true,
            false,
        ),
        variable("CI_PROJECT_ID", project.id.to_string(), true, false),
        variable("CI_PROJECT_NAME", project.path.clone(), true, false),
        variable(
            "CI_PROJECT_PATH",
            project.path_with_namespace.clone(),
            true,
            false,
        ),
        variable("CI_PROJECT_URL", project_url, true, false),
        variable("CI_COMMIT_SHA", sha.clone(), true, false),
        variable("CI_COMMIT_REF_NAME", ref_name.clone(), true, false),
        variable("CI_COMMIT_BEFORE_SHA", ZERO_SHA, true, false),
        variable("CI_CONFIG_PATH", ".gitlab-ci.yml", true, false),
        variable("CI_RUNNER_ID", runner.id.to_string(), true, false),
        variable(
            "CI_RUNNER_DESCRIPTION",
            runner.description.clone().unwrap_or_default(),
            true,
            false,
        ),
        variable("CI_RUNNER_TAGS", runner.tag_list.join(", "), true, false),
    ];
    if let Some(user) = &job.user {
        variables.push(variable("GITLAB_USER_ID", user.id.to_string(), true, false));
        variables.push(variable(
            "GITLAB_USER_LOGIN",
            user.username.clone(),
            true,
            false,
        ));
        variables.push(variable("GITLAB_USER_NAME", user.name.clone(), true, false));
        variables.push(variable(
            "GITLAB_USER_EMAIL",
            user.email.clone().unwrap_or_default(),
            true,
            false,
        ));
    }
    if work.repository_url.is_none() {
        // No repository: the official runner skips git entirely.
        variables.push(variable("GIT_STRATEGY", "none", true, false));
        variables.push(variable("GIT_CHECKOUT", "false", true, false));
    }
    for v in &work.variables {
        let mut entry = variable(&v.key, v.value.clone(), !v.masked, v.masked);
        if v.file {
            entry["file"] = json!(true);
        }
        variables.push(entry);
    }
    let mut steps = vec![json!({
        "name": "script",
        "script": work.before_script.iter().chain(&work.script).collect::<Vec<_>>(),
        "timeout": timeout,
        "when": "on_success",
        "allow_failure": false,
    })];
    if !work.after_script.is_empty() {
        steps.push(json!({
            "name": "after_script",
            "script": work.after_script,
            "timeout": timeout,
            "when": "always",
            "allow_failure": true,
        }));
    }
    json!({
        "id": job.id,
        "token": token,
        "allow_git_fetch": true,
        "job_info": {
            "name": job.name.clone().unwrap_or_default(),
            "stage": job.stage.clone().unwrap_or_default(),
            "project_id": project.id,
            "project_name": project.name,
        },
        "git_info": {
            "repo_url": work.repository_url.clone().unwrap_or_default(),
            "ref": ref_name,
            "sha": sha,
            "before_sha": ZERO_SHA,
            "ref_type": "branch",
            "refspecs": ["+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*"],
            "depth": 0,
        },
        "runner_info": {"timeout": timeout, "runner_session_url": null},
        "variables": variables,
        "steps": steps,
        "image": work.image.as_ref().map(|name| json!({"name": name, "entrypoint": null, "ports": []})),
        "services": [],
        "artifacts": null,
        "cache": [],
        "credentials": [],
        "dependencies": [],
        "features": {"trace_sections": true},
    })
}

/// The queues a runner takes jobs from: its projects', its group's, or the instance's.
pub fn runner_queues(runner: &Runner) -> Vec<String> {
    match runner.runner_type {
        RunnerType::Instance => vec![keys::INSTANCE_QUEUE.to_owned()],
        RunnerType::Group => runner
            .group
            .iter()
            .map(|g| keys::group_queue(g.id))
            .collect(),
        RunnerType::Project => runner.project_ids().map(keys::project_queue).collect(),
    }
}

/// The queues a new job of `project` waits in: the project's; every group's above it when group
/// runners may take it; the instance's when shared runners may.
pub fn job_queues(project: &Project) -> Vec<String> {
    let mut queues = vec![keys::project_queue(project.id)];
    if project.settings.group_runners_enabled {
        queues.extend(project.group_ids.iter().map(|g| keys::group_queue(*g)));
    }
    if project.settings.shared_runners_enabled {
        queues.push(keys::INSTANCE_QUEUE.to_owned());
    }
    queues
}

/// Whether a user may cancel or retry jobs at `level` on the project (`update_build`):
/// Developer+, and Maintainer+ for a job of a protected ref.
pub fn update_level(work: Option<&JobWork>) -> i64 {
    if work.is_some_and(|w| w.protected) {
        crate::access::MAINTAINER
    } else {
        crate::access::DEVELOPER
    }
}

/// GitLab's `cancel`: a pending or running job becomes `canceled` (a running one's runner learns
/// it on its next PUT or PATCH); any other job is left as it is. Returns the job as it is now.
pub async fn cancel(store: &Store, mut job: Job) -> Result<Job, ApiError> {
    for _ in 0..ATTEMPTS {
        if job.status != PENDING && job.status != RUNNING {
            return Ok(job);
        }
        let now = Timestamp::now();
        if store.cancel_job(&job, now).await? {
            job.status = CANCELED.to_owned();
            job.finished_at = Some(now);
            job.queues.clear();
            return Ok(job);
        }
        job = store
            .get_job(job.id)
            .await?
            .ok_or(ApiError::RecordNotFound)?;
    }
    Err(ApiError::Unavailable("the job kept changing".into()))
}

/// GitLab's `retry`: a finished job (success, failed, canceled) is copied into a new pending job
/// (new id, new token when a runner takes it) by `user`; anything else is 403 `Job is not
/// retryable`. Jobs imported from fixtures have nothing to run and are not retryable either.
pub async fn retry(
    store: &Store,
    project: &Project,
    job: &Job,
    user: Option<User>,
    id: i64,
) -> Result<Job, ApiError> {
    let finished = [SUCCESS, FAILED, CANCELED].contains(&job.status.as_str());
    let Some(work) = job.work.clone().filter(|_| finished) else {
        return Err(ApiError::forbidden_because("Job is not retryable"));
    };
    let request = EnqueueRequest {
        name: job.name.clone().unwrap_or_default(),
        stage: job.stage.clone().unwrap_or_else(|| "test".into()),
        ref_name: job.ref_name.clone().unwrap_or_else(|| "main".into()),
        timeout: Some(work.timeout),
        work,
    };
    enqueue(store, project, user, request, id).await
}

/// How often enqueue takes a new id when one is taken (a counter behind imported data), and
/// cancel re-reads a job that changed under it.
const ATTEMPTS: usize = 3;

/// Creates the job `pending`, in a one-job pipeline of its own, in every queue it belongs to.
/// `id` is one the caller took from the job counter (in parallel with its other reads); another
/// is taken only if that one is already used.
pub async fn enqueue(
    store: &Store,
    project: &Project,
    user: Option<User>,
    mut request: EnqueueRequest,
    id: i64,
) -> Result<Job, ApiError> {
    request.settle(&project.settings);
    let now = Timestamp::now();
    let mut id = id;
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            id = store.allocate_id(IdSequence::Job).await?;
        }
        let sha = request
            .work
            .sha
            .clone()
            .unwrap_or_else(|| request.ref_name.clone());
        let work = JobWork {
            pipeline_id: id,
            ..request.work.clone()
        };
        let job = Job {
            id,
            runner_id: None,
            project: project.reference(),
            user: user.clone(),
            status: PENDING.to_owned(),
            stage: Some(request.stage.clone()),
            name: Some(request.name.clone()),
            ref_name: Some(request.ref_name.clone()),
            tag: false,
            coverage: None,
            created_at: now,
            started_at: None,
            finished_at: None,
            commit: None,
            pipeline: Some(
                json!({"id": id, "sha": sha, "ref": request.ref_name, "status": PENDING}),
            ),
            work: Some(work),
            token_digest: None,
            log_length: 0,
            log_generation: 0,
            failure_reason: None,
            touched_at: None,
            queues: job_queues(project),
            on_instance_runner: false,
        };
        if store.create_job(&job).await? {
            return Ok(job);
        }
        tracing::warn!(job_id = id, "job id already taken; retrying");
    }
    Err(ApiError::internal(
        "no free job id after retries: is the job counter behind the data?",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::TokenDigest;

    fn params(value: Value) -> Params {
        Params::from_json(&value).unwrap()
    }

    fn runner(tags: &[&str], run_untagged: bool) -> Runner {
        let mut r = Runner::new(
            1,
            RunnerType::Instance,
            TokenDigest::of("t"),
            Timestamp::from_millis(0),
        );
        r.tag_list = tags.iter().map(|t| (*t).to_owned()).collect();
        r.run_untagged = run_untagged;
        r
    }

    #[test]
    fn enqueue_parameters_and_their_errors() {
        let request = EnqueueRequest::from_params(&params(json!({
            "name": "build", "script": ["make", "make test"], "tag_list": "linux, docker",
            "variables": {"MODE": "release", "N": 3}, "timeout": 1200, "allow_failure": "true"
        })))
        .unwrap();
        assert_eq!(
            (request.stage.as_str(), request.ref_name.as_str()),
            ("test", "main")
        );
        assert_eq!(request.work.script, ["make", "make test"]);
        assert_eq!(request.work.tag_list, ["linux", "docker"]);
        assert_eq!(request.work.variables[1].value, "3");
        assert!(request.work.allow_failure);

        let error = EnqueueRequest::from_params(&params(json!({}))).unwrap_err();
        assert_eq!(
            error.body(),
            json!({"error": "name is missing, script is missing"})
        );
        let error = EnqueueRequest::from_params(&params(json!({
            "name": "x", "script": [], "sha": "abc", "timeout": 60,
            "variables": [{"key": "BAD-KEY", "value": "v"}]
        })))
        .unwrap_err();
        assert_eq!(
            error.body(),
            json!({"error": "variables is invalid, script is invalid, sha is invalid, timeout does not have a valid value"})
        );
        let many: Vec<String> = (0..1000).map(|i| format!("t{i}")).collect();
        let error = EnqueueRequest::from_params(&params(
            json!({"name": "x", "script": "true", "tag_list": many}),
        ))
        .unwrap_err();
        assert_eq!(error.status().as_u16(), 400);
        assert!(error.body()["message"]["tag_list"].is_array());
    }

    #[test]
    fn settling_takes_the_projects_timeout_protection_and_repository() {
        let mut request = EnqueueRequest::from_params(&params(
            json!({"name": "x", "script": "true", "ref": "release/1"}),
        ))
        .unwrap();
        let settings = ProjectSettings {
            protected_refs: vec!["release/*".into()],
            repository_url: Some("/srv/repo".into()),
            build_timeout: 1800,
            ..ProjectSettings::default()
        };
        request.settle(&settings);
        assert_eq!(request.work.timeout, 1800);
        assert!(request.work.protected);
        assert_eq!(request.work.repository_url.as_deref(), Some("/srv/repo"));
    }

    #[test]
    fn which_runner_takes_which_job() {
        let tags = |t: &[&str]| t.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert!(can_take(&runner(&[], true), &[], false));
        assert!(!can_take(&runner(&["a"], false), &[], false), "untagged");
        assert!(can_take(&runner(&["a", "b"], false), &tags(&["b"]), false));
        assert!(!can_take(&runner(&["a"], true), &tags(&["a", "c"]), false));
        assert!(
            !can_take(&runner(&["A"], true), &tags(&["a"]), false),
            "case"
        );
        let mut protected_only = runner(&[], true);
        protected_only.access_level = AccessLevel::RefProtected;
        assert!(!can_take(&protected_only, &[], false));
        assert!(can_take(&protected_only, &[], true));
        let mut locked = runner(&[], true);
        locked.locked = true;
        assert!(can_take(&locked, &[], false), "locked never filters");
    }

    #[test]
    fn timeouts_and_failure_reasons() {
        let work = JobWork {
            timeout: 3600,
            ..JobWork::default()
        };
        let mut r = runner(&[], true);
        assert_eq!(effective_timeout(&work, &r), 3600);
        r.maximum_timeout = Some(900);
        assert_eq!(effective_timeout(&work, &r), 900);
        assert_eq!(failure_reason(Some("script_failure")), "script_failure");
        assert_eq!(failure_reason(Some("made_up")), "unknown_failure");
        assert_eq!(failure_reason(None), "unknown_failure");
    }
}
