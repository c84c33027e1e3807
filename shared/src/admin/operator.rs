//! Day-to-day operator commands: users with tokens, groups, projects, memberships, and
//! registration tokens. Each creation is one transaction, conditional on its names being free.

use super::fixtures::ACCESS_LEVELS;
use super::writes::{TransactError, Write, err, transact};
use crate::auth::{PersonalAccessToken, TokenDigest, generate_token};
use crate::store::directory::{
    Group, MemberOf, Membership, PathOwner, Project, ProjectSettings, SettingsChanges, User,
    UserProfile,
};
use crate::store::item::{Item, ItemBuilder, ItemReader};
use crate::store::settings::ExpiryScope;
use crate::store::{IdSequence, RegistrationScope, Store, TokenRecord, keys};
use crate::time::Timestamp;

/// Something created, with the one-time plaintext of its new token.
#[derive(Debug, Clone)]
pub struct WithToken<T> {
    pub created: T,
    pub token: String,
}

fn taken(what: &str, name: &str) -> String {
    format!("{what} {name:?} is already taken")
}

fn api(e: crate::ApiError) -> String {
    e.to_string()
}

async fn find_path(store: &Store, full_path: &str) -> Result<Option<PathOwner>, String> {
    if !keys::path_fits(full_path) {
        return Ok(None);
    }
    match store.get(keys::path(full_path)).await.map_err(api)? {
        Some(item) => PathOwner::from_item(&item).map(Some).map_err(api),
        None => Ok(None),
    }
}

async fn read(store: &Store, key: (String, String), what: &str) -> Result<Item, String> {
    store
        .get(key)
        .await
        .map_err(api)?
        .ok_or_else(|| format!("{what} not found"))
}

pub struct NewUser {
    pub username: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub admin: bool,
    pub scopes: Vec<String>,
}

/// Creates a user with one personal access token.
pub async fn create_user(store: &Store, new: NewUser) -> Result<WithToken<User>, String> {
    let username = new.username.trim().to_owned();
    if username.is_empty() || username.contains('/') {
        return Err("a username must be non-empty and contain no '/'".into());
    }
    let id = store.allocate_id(IdSequence::User).await.map_err(api)?;
    let user = User {
        id,
        name: new.name.unwrap_or_else(|| username.clone()),
        email: new.email,
        admin: new.admin,
        blocked: false,
        created_at: Timestamp::now(),
        profile: UserProfile::default(),
        username,
    };
    let token = generate_token().map_err(api)?;
    let digest = TokenDigest::of(&token);
    let scopes = if new.scopes.is_empty() {
        vec!["api".to_owned()]
    } else {
        new.scopes
    };
    let pat = PersonalAccessToken {
        user_id: id,
        admin: user.admin,
        blocked: false,
        scopes,
        expires_at: None,
        revoked: false,
    };
    let writes = vec![
        Write::Create(user.to_item()),
        Write::Create(user.username_item()),
        Write::Create(PathOwner::User(id).to_item(&user.username)),
        Write::Create(
            TokenRecord::PersonalAccess(pat)
                .to_item(&digest, user.created_at)
                .build(),
        ),
        Write::Create(
            ItemBuilder::keyed(keys::user_token(id, digest.as_str()))
                .s("entity", "user_token")
                .build(),
        ),
    ];
    match transact(store, writes).await {
        Ok(()) => Ok(WithToken {
            created: user,
            token,
        }),
        Err(TransactError::Taken(1 | 2)) => Err(taken("username", &user.username)),
        Err(TransactError::Taken(_)) => Err("id or token collision; run the command again".into()),
        Err(TransactError::Other(e)) => Err(e),
    }
}

async fn group_by_path(store: &Store, full_path: &str) -> Result<Group, String> {
    match find_path(store, full_path).await? {
        Some(PathOwner::Group(id)) => {
            Group::from_item(&read(store, keys::group(id), "group").await?).map_err(api)
        }
        _ => Err(format!("no group at {full_path:?}")),
    }
}

/// GitLab's limit on one path segment.
const MAX_SEGMENT_CHARS: usize = 255;

fn valid_path(path: &str) -> Result<String, String> {
    let path = path.trim();
    if path.is_empty() || path.contains('/') {
        Err("a path must be one non-empty segment without '/'".into())
    } else if path.chars().count() > MAX_SEGMENT_CHARS {
        Err(format!(
            "a path segment has at most {MAX_SEGMENT_CHARS} characters"
        ))
    } else {
        Ok(path.to_owned())
    }
}

/// A full path that fits in a key (see [`keys::MAX_FULL_PATH_BYTES`]).
fn fitting(full_path: String) -> Result<String, String> {
    if keys::path_fits(&full_path) {
        Ok(full_path)
    } else {
        Err(format!(
            "the full path would be longer than {} bytes",
            keys::MAX_FULL_PATH_BYTES
        ))
    }
}

/// Creates a group (under `parent`, a full path, if given) with a registration token.
pub async fn create_group(
    store: &Store,
    path: &str,
    name: Option<String>,
    parent: Option<&str>,
) -> Result<WithToken<Group>, String> {
    let path = valid_path(path)?;
    let parent = match parent {
        Some(full_path) => Some(group_by_path(store, full_path).await?),
        None => None,
    };
    let full_path = fitting(
        parent
            .as_ref()
            .map_or(path.clone(), |p| format!("{}/{path}", p.full_path)),
    )?;
    let id = store.allocate_id(IdSequence::Group).await.map_err(api)?;
    let name = name.unwrap_or_else(|| path.clone());
    let group = Group {
        id,
        full_path,
        full_name: parent
            .as_ref()
            .map_or(name.clone(), |p| format!("{} / {name}", p.full_name)),
        ancestor_ids: parent.as_ref().map_or(Vec::new(), |p| {
            [p.ancestor_ids.clone(), vec![p.id]].concat()
        }),
        parent_id: parent.as_ref().map(|p| p.id),
        name,
        path,
        created_at: Timestamp::now(),
    };
    let token = generate_token().map_err(api)?;
    let digest = TokenDigest::of(&token);
    let writes = vec![
        Write::Create(group.to_item(Some(digest.as_str()))),
        Write::Create(PathOwner::Group(id).to_item(&group.full_path)),
        Write::Create(
            TokenRecord::Registration(RegistrationScope::Group(group.reference()))
                .to_item(&digest, group.created_at)
                .build(),
        ),
    ];
    match transact(store, writes).await {
        Ok(()) => Ok(WithToken {
            created: group,
            token,
        }),
        Err(TransactError::Taken(1)) => Err(taken("path", &group.full_path)),
        Err(TransactError::Taken(_)) => Err("id or token collision; run the command again".into()),
        Err(TransactError::Other(e)) => Err(e),
    }
}

/// Creates a project in a namespace (a group's full path, or a username) with a registration
/// token. A personal project's owner becomes its Owner member (access level 50).
pub async fn create_project(
    store: &Store,
    path: &str,
    name: Option<String>,
    namespace: &str,
    description: Option<String>,
    changes: SettingsChanges,
) -> Result<WithToken<Project>, String> {
    let path = valid_path(path)?;
    let mut settings = ProjectSettings::default();
    changes.apply(&mut settings);
    settings_valid(&settings)?;
    let name = name.unwrap_or_else(|| path.clone());
    let id = store.allocate_id(IdSequence::Project).await.map_err(api)?;
    let (namespace_id, owner_id, namespace_path, namespace_name, group_ids) =
        match find_path(store, namespace).await? {
            Some(PathOwner::Group(group_id)) => {
                let group = Group::from_item(&read(store, keys::group(group_id), "group").await?)
                    .map_err(api)?;
                let ids = [group.ancestor_ids.clone(), vec![group.id]].concat();
                (Some(group.id), None, group.full_path, group.full_name, ids)
            }
            Some(PathOwner::User(user_id)) => {
                let item = read(store, keys::user(user_id), "user").await?;
                let r = ItemReader::new(&item, "user");
                (
                    None,
                    Some(user_id),
                    r.s("username").map_err(api)?,
                    r.s("name").map_err(api)?,
                    Vec::new(),
                )
            }
            _ => return Err(format!("no group or user at {namespace:?}")),
        };
    let project = Project {
        id,
        path_with_namespace: fitting(format!("{namespace_path}/{path}"))?,
        name_with_namespace: format!("{namespace_name} / {name}"),
        name,
        path,
        description,
        namespace_id,
        owner_id,
        group_ids,
        created_at: Timestamp::now(),
        settings,
    };
    let token = generate_token().map_err(api)?;
    let digest = TokenDigest::of(&token);
    let mut writes = vec![
        Write::Create(project.to_item(Some(digest.as_str()))),
        Write::Create(project.path_item()),
        Write::Create(
            TokenRecord::Registration(RegistrationScope::Project(project.reference()))
                .to_item(&digest, project.created_at)
                .build(),
        ),
    ];
    if let Some(owner) = owner_id {
        writes.push(Write::Replace(
            Membership {
                of: MemberOf::Project(id),
                user_id: owner,
                access_level: 50,
            }
            .to_item(),
        ));
    }
    match transact(store, writes).await {
        Ok(()) => Ok(WithToken {
            created: project,
            token,
        }),
        Err(TransactError::Taken(1)) => Err(taken("path", &project.path_with_namespace)),
        Err(TransactError::Taken(_)) => Err("id or token collision; run the command again".into()),
        Err(TransactError::Other(e)) => Err(e),
    }
}

fn settings_valid(settings: &ProjectSettings) -> Result<(), String> {
    match settings.problems().as_slice() {
        [] => Ok(()),
        problems => Err(problems
            .iter()
            .map(|(field, message)| format!("{field} {message}"))
            .collect::<Vec<_>>()
            .join("; ")),
    }
}

/// Changes a project's settings (named by id or full path): its item and its path item, which
/// carries a copy, in one transaction.
pub async fn update_project(
    store: &Store,
    project: &str,
    changes: SettingsChanges,
) -> Result<Project, String> {
    let mut found = store
        .find_project(project)
        .await
        .map_err(api)?
        .ok_or_else(|| format!("no project at {project:?}"))?;
    changes.apply(&mut found.settings);
    settings_valid(&found.settings)?;
    let stored = read(store, keys::project(found.id), "project").await?;
    let token_digest = ItemReader::new(&stored, "project").opt_s("runners_token_digest");
    let writes = vec![
        Write::Replace(found.to_item(token_digest.as_deref())),
        Write::Replace(found.path_item()),
    ];
    match transact(store, writes).await {
        Ok(()) => Ok(found),
        Err(TransactError::Taken(_)) => Err("the project changed meanwhile; run it again".into()),
        Err(TransactError::Other(e)) => Err(e),
    }
}

/// Whose runner token expiry interval an operator sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpiryTarget {
    Instance,
    /// A group by id or full path.
    Group(String),
    /// A project by id or full path.
    Project(String),
}

/// Reads an interval as operators write it: a positive number of seconds, or `none`.
pub fn parse_interval(text: &str) -> Result<Option<i64>, String> {
    match text.trim() {
        "" | "none" | "null" => Ok(None),
        digits => match digits.parse::<i64>() {
            Ok(seconds) if seconds > 0 => Ok(Some(seconds)),
            _ => Err(format!(
                "{text:?} is not a positive number of seconds or \"none\""
            )),
        },
    }
}

/// Sets (or clears) the runner token expiry interval of the instance, a group or a project.
/// Tokens made from then on get it; existing tokens keep theirs.
pub async fn set_token_expiry(
    store: &Store,
    target: &ExpiryTarget,
    seconds: Option<i64>,
) -> Result<(), String> {
    let scope = match target {
        ExpiryTarget::Instance => ExpiryScope::Instance,
        ExpiryTarget::Group(group) => {
            let found = match group.parse::<i64>() {
                Ok(id) => store
                    .get_group(id)
                    .await
                    .map_err(api)?
                    .ok_or_else(|| format!("no group with id {id}"))?,
                Err(_) => group_by_path(store, group).await?,
            };
            ExpiryScope::Group(found.id)
        }
        ExpiryTarget::Project(project) => {
            let found = store
                .find_project(project)
                .await
                .map_err(api)?
                .ok_or_else(|| format!("no project at {project:?}"))?;
            ExpiryScope::Project(found.id)
        }
    };
    store
        .set_token_expiration_interval(scope, seconds)
        .await
        .map_err(api)
}

/// Gives a user an access level (10..50) in a group or project named by full path.
pub async fn add_member(
    store: &Store,
    username: &str,
    target: &str,
    access_level: i64,
) -> Result<Membership, String> {
    if !ACCESS_LEVELS.contains(&access_level) {
        return Err("access level must be one of 10, 20, 30, 40, 50".into());
    }
    let user_id = match find_path(store, username).await? {
        Some(PathOwner::User(id)) => id,
        _ => return Err(format!("no user {username:?}")),
    };
    let of = match find_path(store, target).await? {
        Some(PathOwner::Group(id)) => MemberOf::Group(id),
        Some(PathOwner::Project(id)) => MemberOf::Project(id),
        _ => return Err(format!("no group or project at {target:?}")),
    };
    let membership = Membership {
        of,
        user_id,
        access_level,
    };
    transact(store, vec![Write::Replace(membership.to_item())])
        .await
        .map_err(|e| format!("{e:?}"))?;
    Ok(membership)
}

/// Whose registration token to show or reset.
#[derive(Debug, Clone)]
pub enum RegistrationTarget {
    Instance,
    Group(String),
    Project(String),
}

/// The scope a target names, with the group or project it carries.
async fn registration_scope(
    store: &Store,
    target: &RegistrationTarget,
) -> Result<RegistrationScope, String> {
    Ok(match target {
        RegistrationTarget::Instance => RegistrationScope::Instance,
        RegistrationTarget::Group(path) => {
            RegistrationScope::Group(group_by_path(store, path).await?.reference())
        }
        RegistrationTarget::Project(path) => match find_path(store, path).await? {
            Some(PathOwner::Project(id)) => RegistrationScope::Project(
                Project::from_item(&read(store, keys::project(id), "project").await?)
                    .map_err(api)?
                    .reference(),
            ),
            _ => return Err(format!("no project at {path:?}")),
        },
    })
}

/// What can be shown of a registration token: only whether one is set, and a digest prefix
/// to tell tokens apart. The plaintext is never stored, so it cannot be shown again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationTokenInfo {
    pub set: bool,
    pub digest_prefix: Option<String>,
}

pub async fn show_registration_token(
    store: &Store,
    target: &RegistrationTarget,
) -> Result<RegistrationTokenInfo, String> {
    let scope = registration_scope(store, target).await?;
    let digest = store.registration_token_digest(&scope).await.map_err(api)?;
    Ok(RegistrationTokenInfo {
        set: digest.is_some(),
        digest_prefix: digest.map(|d| d[..12.min(d.len())].to_owned()),
    })
}

/// Replaces a registration token (see `Store::replace_registration_token`): the old token stops
/// working the moment the new one is printed.
pub async fn reset_registration_token(
    store: &Store,
    target: &RegistrationTarget,
) -> Result<String, String> {
    let scope = registration_scope(store, target).await?;
    crate::registration_tokens::replace_token(store, &scope)
        .await
        .map_err(api)?
        .ok_or_else(|| "the registration token changed meanwhile; run the command again".into())
}

/// For `runnerctl serve`: makes sure an instance registration token exists. Returns the new
/// plaintext when one was created, `None` when one was already set.
pub async fn ensure_instance_registration_token(store: &Store) -> Result<Option<String>, String> {
    if show_registration_token(store, &RegistrationTarget::Instance)
        .await?
        .set
    {
        return Ok(None);
    }
    reset_registration_token(store, &RegistrationTarget::Instance)
        .await
        .map(Some)
}

/// Whether a username exists (serve uses it to bootstrap an admin only once).
pub async fn user_exists(store: &Store, username: &str) -> Result<bool, String> {
    Ok(store
        .get(keys::username(username))
        .await
        .map_err(err)?
        .is_some())
}

/// Enqueues a job as `POST /projects/:id/jobs` does (same parameters as JSON, same validation),
/// on behalf of `user` (a username) or, without one, the project's first Maintainer: the lowest
/// user id with Maintainer or Owner on the project or a group above it. A job on a protected ref
/// needs no Maintainer check here: the operator decides.
pub async fn create_job(
    store: &Store,
    project: &str,
    user: Option<&str>,
    parameters: &serde_json::Value,
) -> Result<crate::store::directory::Job, String> {
    let found = store
        .find_project(project)
        .await
        .map_err(api)?
        .ok_or_else(|| format!("no project at {project:?}"))?;
    let request = crate::jobs::EnqueueRequest::from_params(
        &crate::params::Params::from_json(parameters).map_err(api)?,
    )
    .map_err(|e| e.body().to_string())?;
    let user_id = match user {
        Some(username) => match find_path(store, username).await? {
            Some(PathOwner::User(id)) => Some(id),
            _ => return Err(format!("no user {username:?}")),
        },
        None => first_maintainer(store, &found).await?,
    };
    let user = match user_id {
        Some(id) => store.get_user(id).await.map_err(api)?,
        None => None,
    };
    let id = store.allocate_id(IdSequence::Job).await.map_err(api)?;
    crate::jobs::enqueue(store, &found, user, request, id)
        .await
        .map_err(api)
}

async fn first_maintainer(store: &Store, project: &Project) -> Result<Option<i64>, String> {
    let sources = std::iter::once(keys::project(project.id).0)
        .chain(project.group_ids.iter().map(|g| keys::group(*g).0));
    let mut maintainers = Vec::new();
    for pk in sources {
        let output = store
            .client()
            .query()
            .table_name(store.table())
            .key_condition_expression("pk = :pk AND begins_with(sk, :member)")
            .expression_attribute_values(":pk", aws_sdk_dynamodb::types::AttributeValue::S(pk))
            .expression_attribute_values(
                ":member",
                aws_sdk_dynamodb::types::AttributeValue::S("MEMBER#".into()),
            )
            .send()
            .await
            .map_err(|e| aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string())?;
        for item in output.items() {
            let member = Membership::from_item(item).map_err(api)?;
            if member.access_level >= crate::access::MAINTAINER {
                maintainers.push(member.user_id);
            }
        }
    }
    Ok(maintainers.into_iter().min())
}
