//! `runnerctl`: the operator CLI (see `shared/spec/operations.md` in the steering repo and the
//! README). Talks to the table through the same store code as the functions.

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use clap::{Args, Parser, Subcommand};
use runners_shared::admin::dynamodb_local::DynamoDbLocal;
use runners_shared::admin::fixtures::Fixture;
use runners_shared::admin::operator::{self, ExpiryTarget, NewUser, RegistrationTarget};
use runners_shared::admin::{client_for, schema};
use runners_shared::config::DEFAULT_TABLE_NAME;
use runners_shared::http::{PeerAddr, entry_point};
use runners_shared::store::directory::{ProjectSettings, SettingsChanges};
use runners_shared::store::settings::{ALLOW_REGISTRATION_TOKEN, TOKEN_EXPIRATION_INTERVAL};
use runners_shared::time::Timestamp;
use runners_shared::{AppState, Settings, Store, sweeper};
use serde_json::json;
use std::net::SocketAddr;
use std::process::ExitCode;
use tower::ServiceExt;

#[derive(Parser)]
#[command(
    name = "runnerctl",
    version,
    about = "Operate the GitLab-compatible Runners API and its DynamoDB table"
)]
struct Cli {
    /// The DynamoDB table.
    #[arg(long, global = true, env = "TABLE_NAME", default_value = DEFAULT_TABLE_NAME)]
    table: String,
    /// A DynamoDB endpoint (e.g. DynamoDB Local). Unset: the AWS default chain, a deployed table.
    #[arg(long, global = true, env = "DYNAMODB_ENDPOINT")]
    endpoint: Option<String>,
    /// AWS region (defaults to us-east-1 when an endpoint is given).
    #[arg(long, global = true, env = "AWS_REGION")]
    region: Option<String>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The table itself.
    Table {
        #[command(subcommand)]
        command: TableCommand,
    },
    /// Import a fixture file (idempotent; validated whole before anything is written).
    Seed { file: std::path::PathBuf },
    /// Serve every function's routes on one port, as API Gateway would route them.
    Serve(ServeArgs),
    /// Users and their personal access tokens.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Groups.
    Group {
        #[command(subcommand)]
        command: GroupCommand,
    },
    /// Projects.
    Project {
        #[command(subcommand)]
        command: ProjectCommand,
    },
    /// Group and project memberships.
    Member {
        #[command(subcommand)]
        command: MemberCommand,
    },
    /// Instance settings.
    Settings {
        #[command(subcommand)]
        command: SettingsCommand,
    },
    /// Jobs.
    Job {
        #[command(subcommand)]
        command: JobCommand,
    },
    /// The instance's (or a group's or project's) runner registration token.
    RegistrationToken {
        #[command(subcommand)]
        command: RegistrationTokenCommand,
    },
}

#[derive(Subcommand)]
enum TableCommand {
    /// Create the table and its indexes as template.yaml declares them (quiet if it exists).
    Create,
    /// Recompute what runner lists read (runner counts, the runner id index's keys, group
    /// subtree sets) from the runner items: once after deploying onto a table written before
    /// they existed, while nothing registers or deletes runners.
    RebuildLists,
}

#[derive(Args)]
struct ServeArgs {
    #[arg(long, env = "PORT", default_value_t = 3000)]
    port: u16,
    #[arg(long, env = "BIND", default_value = "127.0.0.1")]
    bind: std::net::IpAddr,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user and print a new personal access token.
    Create {
        username: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        admin: bool,
        /// Token scopes (api, read_api); default api.
        #[arg(long = "scope")]
        scopes: Vec<String>,
    },
}

#[derive(Subcommand)]
enum GroupCommand {
    /// Create a group and print its registration token.
    Create {
        path: String,
        #[arg(long)]
        name: Option<String>,
        /// Full path of the parent group.
        #[arg(long)]
        parent: Option<String>,
    },
    /// Change a group's runner token expiry override.
    Update {
        /// The group's id or full path.
        group: String,
        /// Seconds a new token of the group's runners (and of runners below it) lives at most,
        /// or `none`.
        #[arg(long)]
        runner_token_expiration_interval: String,
    },
}

#[derive(Subcommand)]
enum ProjectCommand {
    /// Create a project and print its registration token.
    Create {
        path: String,
        /// Full path of the group, or a username for a personal project.
        #[arg(long)]
        namespace: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        description: Option<String>,
        #[command(flatten)]
        settings: SettingsArgs,
    },
    /// Change a project's CI settings and runner token expiry override.
    Update {
        /// The project's id or full path.
        project: String,
        #[command(flatten)]
        settings: SettingsArgs,
        /// Seconds a new token of the project's runners lives at most, or `none`.
        #[arg(long)]
        runner_token_expiration_interval: Option<String>,
    },
}

/// A project's CI settings (jobs-api.md); what is not given keeps its value (or the default).
#[derive(Args, Clone)]
struct SettingsArgs {
    /// What runners clone for the project's jobs (a URL or a local path); '' removes it.
    #[arg(long)]
    repository_url: Option<String>,
    /// Whether instance runners take the project's jobs (default true).
    #[arg(long)]
    shared_runners_enabled: Option<bool>,
    /// Whether group runners take the project's jobs (default true).
    #[arg(long)]
    group_runners_enabled: Option<bool>,
    /// A job's timeout when it sets none, in seconds, 600..2592000 (default 3600).
    #[arg(long)]
    build_timeout: Option<i64>,
    /// Protected ref names, comma-separated, `*` as a wildcard (default main).
    #[arg(long, value_delimiter = ',')]
    protected_refs: Option<Vec<String>>,
}

impl From<&SettingsArgs> for SettingsChanges {
    fn from(args: &SettingsArgs) -> Self {
        Self {
            repository_url: args.repository_url.clone(),
            shared_runners_enabled: args.shared_runners_enabled,
            group_runners_enabled: args.group_runners_enabled,
            build_timeout: args.build_timeout,
            protected_refs: args.protected_refs.clone(),
        }
    }
}

/// The settings as runnerctl prints them.
fn settings_json(settings: &ProjectSettings) -> serde_json::Value {
    json!({
        "repository_url": settings.repository_url,
        "shared_runners_enabled": settings.shared_runners_enabled,
        "group_runners_enabled": settings.group_runners_enabled,
        "build_timeout": settings.build_timeout,
        "protected_refs": settings.protected_refs,
    })
}

#[derive(Subcommand)]
enum SettingsCommand {
    /// Print the instance settings.
    Show,
    /// Change one: `allow_runner_registration_token true|false` (legacy registration, on by
    /// default; off makes POST /runners answer 410), `runner_token_expiration_interval
    /// SECONDS|none` (how long new runner tokens live; none by default).
    Set { key: String, value: String },
}

#[derive(Subcommand)]
enum JobCommand {
    /// Enqueue a job, as POST /projects/:id/jobs does, and print its id.
    Create {
        /// The project's id or full path.
        #[arg(long)]
        project: String,
        #[arg(long)]
        name: String,
        /// A script line; repeat for several.
        #[arg(long = "script", required = true)]
        script: Vec<String>,
        /// A tag the runner must have; repeat for several.
        #[arg(long = "tag")]
        tags: Vec<String>,
        #[arg(long = "ref")]
        ref_name: Option<String>,
        #[arg(long)]
        sha: Option<String>,
        #[arg(long)]
        stage: Option<String>,
        /// Who the job is for (a username); default: the project's first Maintainer.
        #[arg(long)]
        user: Option<String>,
    },
}

#[derive(Subcommand)]
enum MemberCommand {
    /// Give a user an access level (10 guest .. 50 owner) in a group or project.
    Add {
        #[arg(long)]
        user: String,
        /// Full path of the group or project.
        #[arg(long)]
        to: String,
        #[arg(long)]
        access_level: i64,
    },
}

#[derive(Args)]
struct TargetArgs {
    /// A group's token (full path) instead of the instance's.
    #[arg(long, conflicts_with = "project")]
    group: Option<String>,
    /// A project's token (full path) instead of the instance's.
    #[arg(long)]
    project: Option<String>,
}

impl TargetArgs {
    fn target(&self) -> RegistrationTarget {
        match (&self.group, &self.project) {
            (Some(group), _) => RegistrationTarget::Group(group.clone()),
            (_, Some(project)) => RegistrationTarget::Project(project.clone()),
            _ => RegistrationTarget::Instance,
        }
    }
}

#[derive(Subcommand)]
enum RegistrationTokenCommand {
    /// Whether a token is set (tokens are stored as digests: the plaintext cannot be shown again).
    Show(TargetArgs),
    /// Replace the token and print the new one; the old one stops working at once.
    Reset(TargetArgs),
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,aws_config=warn,aws_smithy_runtime=warn")
    });
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .init();
}

/// Prints either the text or the JSON form of a result.
fn report(json_mode: bool, text: String, value: serde_json::Value) {
    if json_mode {
        println!("{value}");
    } else {
        println!("{text}");
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    init_logging();
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("runnerctl: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn store_for(cli: &Cli) -> Store {
    Store::new(
        client_for(cli.endpoint.as_deref(), cli.region.as_deref()).await,
        cli.table.clone(),
    )
}

async fn run(cli: Cli) -> Result<(), String> {
    // `serve` builds its own client once it knows its endpoint: building the default one first
    // would look the region up from IMDS, which is not there off AWS.
    if let Command::Serve(args) = &cli.command {
        return serve(&cli, args).await;
    }
    let store = store_for(&cli).await;
    let json_mode = cli.json;
    match &cli.command {
        Command::Table {
            command: TableCommand::Create,
        } => {
            let created = schema::create_table(&store)
                .await
                .map_err(|e| e.to_string())?;
            let text = if created {
                format!("created table {}", store.table())
            } else {
                format!("table {} already exists", store.table())
            };
            report(
                json_mode,
                text,
                json!({"table": store.table(), "created": created}),
            );
        }
        Command::Table {
            command: TableCommand::RebuildLists,
        } => {
            let summary = runners_shared::admin::listing::rebuild_listing(
                &store,
                runners_shared::admin::listing::JobCounts::All,
            )
            .await?;
            report(
                json_mode,
                format!(
                    "{} runners: {} counters written ({} stale removed), {} index entries (subtree sets, facets, contacts), {} runners given index keys; {} runner job counters, {} jobs given index keys; {} orphan index entries removed",
                    summary.runners,
                    summary.counters,
                    summary.stale_counters_removed,
                    summary.index_entries,
                    summary.indexed,
                    summary.job_counters,
                    summary.jobs_indexed,
                    summary.orphan_entries_removed
                ),
                json!({
                    "runners": summary.runners,
                    "counters": summary.counters,
                    "stale_counters_removed": summary.stale_counters_removed,
                    "index_entries": summary.index_entries,
                    "indexed": summary.indexed,
                    "job_counters": summary.job_counters,
                    "jobs_indexed": summary.jobs_indexed,
                    "orphan_entries_removed": summary.orphan_entries_removed,
                }),
            );
        }
        Command::Seed { file } => {
            let text =
                std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
            let fixture = Fixture::parse(&text).map_err(|problems| {
                format!(
                    "{} is not a valid fixture; nothing was written:\n  {}",
                    file.display(),
                    problems.join("\n  ")
                )
            })?;
            let summary = fixture.import(&store).await?;
            report(
                json_mode,
                format!("imported {} items from {}", summary.items, file.display()),
                json!({"items": summary.items, "stale_tokens_removed": summary.stale_tokens_removed}),
            );
        }
        // Returned above, before the default store; kept so that the match stays exhaustive.
        Command::Serve(args) => serve(&cli, args).await?,
        Command::User {
            command:
                UserCommand::Create {
                    username,
                    name,
                    email,
                    admin,
                    scopes,
                },
        } => {
            let new = NewUser {
                username: username.clone(),
                name: name.clone(),
                email: email.clone(),
                admin: *admin,
                scopes: scopes.clone(),
            };
            let made = operator::create_user(&store, new).await?;
            let user = &made.created;
            report(
                json_mode,
                format!(
                    "created user {} (id {}{})\npersonal access token: {}",
                    user.username,
                    user.id,
                    if user.admin { ", admin" } else { "" },
                    made.token
                ),
                json!({"id": user.id, "username": user.username, "admin": user.admin, "token": made.token}),
            );
        }
        Command::Group {
            command: GroupCommand::Create { path, name, parent },
        } => {
            let made =
                operator::create_group(&store, path, name.clone(), parent.as_deref()).await?;
            let group = &made.created;
            report(
                json_mode,
                format!(
                    "created group {} (id {})\nregistration token: {}",
                    group.full_path, group.id, made.token
                ),
                json!({"id": group.id, "full_path": group.full_path, "runners_token": made.token}),
            );
        }
        Command::Project {
            command:
                ProjectCommand::Create {
                    path,
                    namespace,
                    name,
                    description,
                    settings,
                },
        } => {
            let made = operator::create_project(
                &store,
                path,
                name.clone(),
                namespace,
                description.clone(),
                settings.into(),
            )
            .await?;
            let project = &made.created;
            report(
                json_mode,
                format!(
                    "created project {} (id {})\nregistration token: {}",
                    project.path_with_namespace, project.id, made.token
                ),
                json!({"id": project.id, "path_with_namespace": project.path_with_namespace,
                       "runners_token": made.token, "settings": settings_json(&project.settings)}),
            );
        }
        Command::Group {
            command:
                GroupCommand::Update {
                    group,
                    runner_token_expiration_interval,
                },
        } => {
            let seconds = operator::parse_interval(runner_token_expiration_interval)?;
            operator::set_token_expiry(&store, &ExpiryTarget::Group(group.clone()), seconds)
                .await?;
            report(
                json_mode,
                format!(
                    "group {group}: {TOKEN_EXPIRATION_INTERVAL} {}",
                    seconds.map_or_else(|| "none".to_owned(), |s| s.to_string())
                ),
                json!({"group": group, TOKEN_EXPIRATION_INTERVAL: seconds}),
            );
        }
        Command::Project {
            command:
                ProjectCommand::Update {
                    project,
                    settings,
                    runner_token_expiration_interval,
                },
        } => {
            if let Some(interval) = runner_token_expiration_interval {
                let seconds = operator::parse_interval(interval)?;
                operator::set_token_expiry(
                    &store,
                    &ExpiryTarget::Project(project.clone()),
                    seconds,
                )
                .await?;
            }
            let updated = operator::update_project(&store, project, settings.into()).await?;
            let shown = settings_json(&updated.settings);
            report(
                json_mode,
                format!(
                    "updated project {} (id {}): {shown}",
                    updated.path_with_namespace, updated.id
                ),
                json!({"id": updated.id, "path_with_namespace": updated.path_with_namespace,
                       "settings": shown}),
            );
        }
        Command::Settings { command } => {
            if let SettingsCommand::Set { key, value } = command {
                match key.as_str() {
                    ALLOW_REGISTRATION_TOKEN => {
                        let allow = runners_shared::params::parse_bool(value)
                            .ok()
                            .flatten()
                            .ok_or_else(|| format!("{key} takes true or false, not {value:?}"))?;
                        store
                            .set_allow_registration_token(allow)
                            .await
                            .map_err(|e| e.to_string())?;
                    }
                    TOKEN_EXPIRATION_INTERVAL => {
                        let seconds = operator::parse_interval(value)?;
                        operator::set_token_expiry(&store, &ExpiryTarget::Instance, seconds)
                            .await?;
                    }
                    _ => {
                        return Err(format!(
                            "unknown setting {key:?} (settable: {ALLOW_REGISTRATION_TOKEN}, \
                             {TOKEN_EXPIRATION_INTERVAL})"
                        ));
                    }
                }
            }
            let settings = store.instance_settings().await.map_err(|e| e.to_string())?;
            let expiry = &settings.token_expiry;
            report(
                json_mode,
                format!(
                    "{ALLOW_REGISTRATION_TOKEN}: {}\n{TOKEN_EXPIRATION_INTERVAL}: {}\n\
                     group overrides: {:?}\nproject overrides: {:?}",
                    settings.allow_runner_registration_token,
                    expiry
                        .instance
                        .map_or_else(|| "none".to_owned(), |s| s.to_string()),
                    expiry.groups,
                    expiry.projects,
                ),
                json!({
                    ALLOW_REGISTRATION_TOKEN: settings.allow_runner_registration_token,
                    TOKEN_EXPIRATION_INTERVAL: expiry.instance,
                    "group_runner_token_expiration_intervals": expiry.groups,
                    "project_runner_token_expiration_intervals": expiry.projects,
                }),
            );
        }
        Command::Job {
            command:
                JobCommand::Create {
                    project,
                    name,
                    script,
                    tags,
                    ref_name,
                    sha,
                    stage,
                    user,
                },
        } => {
            let mut parameters = json!({"name": name, "script": script, "tag_list": tags});
            for (key, value) in [("ref", ref_name), ("sha", sha), ("stage", stage)] {
                if let Some(value) = value {
                    parameters[key] = json!(value);
                }
            }
            let job = operator::create_job(&store, project, user.as_deref(), &parameters).await?;
            report(
                json_mode,
                format!(
                    "enqueued job {} ({}) in {}",
                    job.id, job.status, job.project.path_with_namespace
                ),
                json!({"id": job.id, "status": job.status,
                       "project": job.project.path_with_namespace}),
            );
        }
        Command::Member {
            command:
                MemberCommand::Add {
                    user,
                    to,
                    access_level,
                },
        } => {
            operator::add_member(&store, user, to, *access_level).await?;
            report(
                json_mode,
                format!("{user} now has access level {access_level} in {to}"),
                json!({"user": user, "to": to, "access_level": access_level}),
            );
        }
        Command::RegistrationToken {
            command: RegistrationTokenCommand::Show(target),
        } => {
            let info = operator::show_registration_token(&store, &target.target()).await?;
            let text = match &info.digest_prefix {
                Some(prefix) => format!(
                    "a registration token is set (sha256 {prefix}...); tokens are stored only as digests, \
                     so it cannot be shown again: use `registration-token reset` for a new one"
                ),
                None => {
                    "no registration token is set: use `registration-token reset` to create one"
                        .to_owned()
                }
            };
            report(
                json_mode,
                text,
                json!({"set": info.set, "sha256_prefix": info.digest_prefix}),
            );
        }
        Command::RegistrationToken {
            command: RegistrationTokenCommand::Reset(target),
        } => {
            let token = operator::reset_registration_token(&store, &target.target()).await?;
            report(
                json_mode,
                format!("new registration token: {token}"),
                json!({"token": token}),
            );
        }
    }
    Ok(())
}

/// Every function's own router, merged as API Gateway routes them. A new endpoint group
/// appears here by being added to this list.
fn all_routes(state: AppState) -> Router {
    Router::new()
        .merge(runner_token::router(state.clone()))
        .merge(runner_management::router(state.clone()))
        .merge(project_runners::router(state.clone()))
        .merge(runner_jobs::router(state.clone()))
        .merge(project_jobs::router(state))
}

async fn serve(cli: &Cli, args: &ServeArgs) -> Result<(), String> {
    let embedded = match &cli.endpoint {
        Some(_) => None,
        None => {
            eprintln!("starting DynamoDB Local (in memory)...");
            Some(DynamoDbLocal::start().await?)
        }
    };
    let endpoint = cli
        .endpoint
        .clone()
        .or_else(|| embedded.as_ref().map(|d| d.endpoint.clone()));
    let store = Store::new(
        client_for(endpoint.as_deref(), cli.region.as_deref()).await,
        cli.table.clone(),
    );
    schema::create_table(&store)
        .await
        .map_err(|e| e.to_string())?;
    let registration_token = operator::ensure_instance_registration_token(&store).await?;
    let admin_token = if operator::user_exists(&store, "root").await? {
        None
    } else {
        let new = NewUser {
            username: "root".into(),
            name: Some("Administrator".into()),
            email: None,
            admin: true,
            scopes: vec![],
        };
        Some(operator::create_user(&store, new).await?.token)
    };

    let settings = Settings {
        table_name: cli.table.clone(),
        ..Settings::from_env()
    };
    let deadline = settings.request_deadline;
    // The sweeper Lambda's schedule, locally: the same code every minute.
    let sweeping = store.clone();
    tokio::spawn(async move {
        let mut every_minute = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            every_minute.tick().await;
            match sweeper::sweep(&sweeping, Timestamp::now()).await {
                Ok(report) if report.failed_running + report.failed_pending > 0 => {
                    tracing::info!(?report, "sweep");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "sweep failed"),
            }
        }
    });
    let routes = entry_point::<Body>(all_routes(AppState::new(store, settings)), deadline);
    // The socket peer stands in for API Gateway's sourceIp.
    let app =
        Router::new().fallback_service(tower::service_fn(move |mut request: Request<Body>| {
            if let Some(ConnectInfo(peer)) = request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .copied()
            {
                request.extensions_mut().insert(PeerAddr(peer.ip()));
            }
            routes.clone().oneshot(request)
        }));
    let address = SocketAddr::new(args.bind, args.port);
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|e| format!("binding {address}: {e}"))?;
    let base = format!(
        "http://{}",
        listener.local_addr().map_err(|e| e.to_string())?
    );

    println!(
        "Runners API listening on {base}/api/v4 (table {}, DynamoDB {})",
        cli.table,
        endpoint.as_deref().unwrap_or("?")
    );
    match &registration_token {
        Some(token) => {
            println!("Instance registration token: {token}");
            println!(
                "Register a runner:  curl -s -X POST {base}/api/v4/runners -d token={token} -d description=my-runner"
            );
        }
        None => println!(
            "An instance registration token is already set (runnerctl registration-token reset prints a new one)."
        ),
    }
    if let Some(token) = &admin_token {
        println!("Admin personal access token (user root): {token}");
        println!("python-gitlab:      gitlab.Gitlab('{base}', private_token='{token}')");
    }
    println!("Stop with Ctrl-C.");

    let served = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await;
    if let Some(local) = embedded {
        local.stop().await;
    }
    served.map_err(|e| e.to_string())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
