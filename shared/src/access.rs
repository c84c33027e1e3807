//! Who may do what with a runner (the spec's section 4), as pure functions over the caller, the
//! runner, and the caller's memberships in the runner's projects and groups.
//!
//! Project access is the highest of the caller's membership in the project and in each group
//! of its namespace chain; group access is the highest over the group and its ancestors.

use crate::auth::Caller;
use crate::error::ApiError;
use crate::runner::{GroupRef, ProjectRef, Runner, RunnerType};
use crate::store::directory::{MemberOf, Membership};
use std::collections::HashMap;

pub const GUEST: i64 = 10;
pub const REPORTER: i64 = 20;
pub const DEVELOPER: i64 = 30;
pub const MAINTAINER: i64 = 40;
pub const OWNER: i64 = 50;

/// A caller's direct access levels.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Memberships {
    groups: HashMap<i64, i64>,
    projects: HashMap<i64, i64>,
}

impl FromIterator<Membership> for Memberships {
    fn from_iter<I: IntoIterator<Item = Membership>>(iter: I) -> Self {
        let mut memberships = Self::default();
        for m in iter {
            let map = match m.of {
                MemberOf::Group(id) => memberships.groups.entry(id),
                MemberOf::Project(id) => memberships.projects.entry(id),
            };
            let level = map.or_insert(0);
            *level = (*level).max(m.access_level);
        }
        memberships
    }
}

impl Memberships {
    pub fn group_level(&self, group_id: i64, ancestor_ids: &[i64]) -> i64 {
        std::iter::once(&group_id)
            .chain(ancestor_ids)
            .filter_map(|g| self.groups.get(g))
            .copied()
            .max()
            .unwrap_or(0)
    }

    pub fn project_level(&self, project: &ProjectRef) -> i64 {
        let inherited = project
            .group_ids
            .iter()
            .filter_map(|g| self.groups.get(g))
            .copied()
            .max()
            .unwrap_or(0);
        self.projects
            .get(&project.id)
            .copied()
            .unwrap_or(0)
            .max(inherited)
    }

    /// Direct memberships at or above a level.
    pub fn groups_at_least(&self, level: i64) -> impl Iterator<Item = i64> + '_ {
        self.groups
            .iter()
            .filter(move |(_, l)| **l >= level)
            .map(|(id, _)| *id)
    }

    pub fn projects_at_least(&self, level: i64) -> impl Iterator<Item = i64> + '_ {
        self.projects
            .iter()
            .filter(move |(_, l)| **l >= level)
            .map(|(id, _)| *id)
    }
}

/// The membership items that decide a caller's access to this runner.
/// Every membership of the caller (none needed for an admin), for project-level checks.
pub async fn memberships_of(
    store: &crate::store::Store,
    caller: Caller,
) -> Result<Memberships, ApiError> {
    if caller.admin {
        return Ok(Memberships::default());
    }
    Ok(store
        .memberships_of(caller.user_id)
        .await?
        .into_iter()
        .collect())
}

/// The project `:id` names (a numeric id or a full path): 404 `Project Not Found` when there is
/// none, or the path parameter is not UTF-8.
pub async fn project_from_path(
    store: &crate::store::Store,
    path: &crate::http::PathParams,
) -> Result<crate::store::directory::Project, ApiError> {
    let id_or_path = path.get("id").ok_or(ApiError::NotFound("Project"))?;
    store
        .find_project(id_or_path)
        .await?
        .ok_or(ApiError::NotFound("Project"))
}

/// Authenticates the caller and finds the project `:id` names, reading both at once; the
/// answers keep GitLab's order (the token's 401/403 first, then the project's 404).
pub async fn caller_and_project(
    store: &crate::store::Store,
    headers: &axum::http::HeaderMap,
    params: &crate::params::Params,
    path: &crate::http::PathParams,
    access: crate::auth::Access,
) -> Result<(Caller, crate::store::directory::Project), ApiError> {
    let (caller, project) = futures_util::future::join(
        crate::auth::authenticate(store, headers, params, access),
        project_from_path(store, path),
    )
    .await;
    let caller = caller?;
    Ok((caller, project?))
}

/// The same for a group `:id` (a numeric id or a full path): 404 `Group Not Found`.
pub async fn caller_and_group(
    store: &crate::store::Store,
    headers: &axum::http::HeaderMap,
    params: &crate::params::Params,
    path: &crate::http::PathParams,
    access: crate::auth::Access,
) -> Result<(Caller, crate::store::directory::Group), ApiError> {
    let group = async {
        let id_or_path = path.get("id").ok_or(ApiError::NotFound("Group"))?;
        store
            .find_group(id_or_path)
            .await?
            .ok_or(ApiError::NotFound("Group"))
    };
    let (caller, group) = futures_util::future::join(
        crate::auth::authenticate(store, headers, params, access),
        group,
    )
    .await;
    let caller = caller?;
    Ok((caller, group?))
}

/// GitLab's project check: 404 for a project the caller cannot see (below Guest), 403 below
/// `needed`. Admins pass.
pub fn check_project_level(
    caller: Caller,
    project: &ProjectRef,
    memberships: &Memberships,
    needed: i64,
) -> Result<(), ApiError> {
    if caller.admin {
        return Ok(());
    }
    let level = memberships.project_level(project);
    if level < GUEST {
        return Err(ApiError::NotFound("Project"));
    }
    if level < needed {
        return Err(ApiError::Forbidden);
    }
    Ok(())
}

/// The same for a group: 404 `Group Not Found` when the caller cannot see it, 403 below
/// `needed`. Admins pass.
pub fn check_group_level(
    caller: Caller,
    group: &GroupRef,
    memberships: &Memberships,
    needed: i64,
) -> Result<(), ApiError> {
    if caller.admin {
        return Ok(());
    }
    let level = memberships.group_level(group.id, &group.ancestor_ids);
    if level < GUEST {
        return Err(ApiError::NotFound("Group"));
    }
    if level < needed {
        return Err(ApiError::Forbidden);
    }
    Ok(())
}

pub fn membership_sources(runner: &Runner) -> Vec<MemberOf> {
    let mut sources = Vec::new();
    for project in &runner.projects {
        sources.push(MemberOf::Project(project.id));
        sources.extend(project.group_ids.iter().map(|g| MemberOf::Group(*g)));
    }
    if let Some(group) = &runner.group {
        sources.push(MemberOf::Group(group.id));
        sources.extend(group.ancestor_ids.iter().map(|g| MemberOf::Group(*g)));
    }
    sources.sort_by_key(|s| match s {
        MemberOf::Group(id) => (0, *id),
        MemberOf::Project(id) => (1, *id),
    });
    sources.dedup();
    sources
}

/// An owned runner: a project runner of a project where the caller is Maintainer+, or a group
/// runner of a group where the caller is Maintainer+ (directly or through an ancestor).
/// Instance runners are never owned.
pub fn owns(runner: &Runner, memberships: &Memberships) -> bool {
    match runner.runner_type {
        RunnerType::Instance => false,
        RunnerType::Project => runner
            .projects
            .iter()
            .any(|p| memberships.project_level(p) >= MAINTAINER),
        RunnerType::Group => runner
            .group
            .as_ref()
            .is_some_and(|g| memberships.group_level(g.id, &g.ancestor_ids) >= MAINTAINER),
    }
}

const NO_ACCESS: &str = "No access granted";

fn owner_only(caller: Caller, runner: &Runner, memberships: &Memberships) -> Result<(), ApiError> {
    if caller.admin || owns(runner, memberships) {
        Ok(())
    } else {
        Err(ApiError::forbidden_because(NO_ACCESS))
    }
}

/// Reading one runner: admins, anyone for an instance runner, else owners.
pub fn check_read(
    caller: Caller,
    runner: &Runner,
    memberships: &Memberships,
) -> Result<(), ApiError> {
    if runner.runner_type == RunnerType::Instance {
        return Ok(());
    }
    owner_only(caller, runner, memberships)
}

pub fn check_update(
    caller: Caller,
    runner: &Runner,
    memberships: &Memberships,
) -> Result<(), ApiError> {
    owner_only(caller, runner, memberships)
}

/// Deleting: admins; for others a runner of several projects is refused before ownership is
/// even looked at (GitLab's order).
pub fn check_delete(
    caller: Caller,
    runner: &Runner,
    memberships: &Memberships,
) -> Result<(), ApiError> {
    if caller.admin {
        return Ok(());
    }
    if runner.projects.len() > 1 {
        return Err(ApiError::forbidden_because(
            "Runner associated with more than one project",
        ));
    }
    owner_only(caller, runner, memberships)
}

/// A runner's jobs: admins and owners (so not a non-admin for an instance runner).
pub fn check_read_jobs(
    caller: Caller,
    runner: &Runner,
    memberships: &Memberships,
) -> Result<(), ApiError> {
    owner_only(caller, runner, memberships)
}

/// The runner's projects a caller may see in RunnerDetails: all for admins, else those where
/// the caller has any access.
pub fn visible_projects<'a>(
    caller: Caller,
    runner: &'a Runner,
    memberships: &Memberships,
) -> Vec<&'a ProjectRef> {
    runner
        .projects
        .iter()
        .filter(|p| caller.admin || memberships.project_level(p) >= GUEST)
        .collect()
}

pub fn visible_groups<'a>(
    caller: Caller,
    runner: &'a Runner,
    memberships: &Memberships,
) -> Vec<&'a GroupRef> {
    runner
        .group
        .iter()
        .filter(|g| caller.admin || memberships.group_level(g.id, &g.ancestor_ids) >= GUEST)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::TokenDigest;
    use crate::time::Timestamp;

    fn project(id: i64, group_ids: &[i64]) -> ProjectRef {
        ProjectRef::sample(id, group_ids)
    }

    fn runner(
        runner_type: RunnerType,
        projects: Vec<ProjectRef>,
        group: Option<GroupRef>,
    ) -> Runner {
        let mut r = Runner::new(
            1,
            runner_type,
            TokenDigest::of("t"),
            Timestamp::from_millis(0),
        );
        r.projects = projects;
        r.group = group;
        r
    }

    fn member(of: MemberOf, level: i64) -> Membership {
        Membership {
            of,
            user_id: 7,
            access_level: level,
        }
    }

    const USER: Caller = Caller {
        user_id: 7,
        admin: false,
    };
    const ADMIN: Caller = Caller {
        user_id: 1,
        admin: true,
    };

    fn forbidden_reason(result: Result<(), ApiError>) -> String {
        result.unwrap_err().body()["message"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    #[test]
    fn project_access_is_inherited_from_the_namespace_chain() {
        let r = runner(RunnerType::Project, vec![project(100, &[10, 11])], None);
        for (memberships, owned) in [
            (vec![member(MemberOf::Project(100), 40)], true),
            (vec![member(MemberOf::Project(100), 30)], false),
            (vec![member(MemberOf::Group(10), 50)], true),
            (
                vec![
                    member(MemberOf::Group(11), 40),
                    member(MemberOf::Project(100), 20),
                ],
                true,
            ),
            (vec![member(MemberOf::Group(12), 50)], false),
        ] {
            assert_eq!(owns(&r, &memberships.into_iter().collect()), owned);
        }
    }

    #[test]
    fn group_runners_are_owned_through_ancestors_and_instance_runners_never() {
        let group = GroupRef {
            id: 11,
            name: "sub".into(),
            full_path: "top/sub".into(),
            ancestor_ids: vec![10],
        };
        let r = runner(RunnerType::Group, vec![], Some(group));
        assert!(owns(
            &r,
            &[member(MemberOf::Group(10), 40)].into_iter().collect()
        ));
        assert!(!owns(
            &r,
            &[member(MemberOf::Group(10), 30)].into_iter().collect()
        ));
        let shared = runner(RunnerType::Instance, vec![], None);
        assert!(!owns(
            &shared,
            &[member(MemberOf::Group(10), 50)].into_iter().collect()
        ));
    }

    #[test]
    fn the_rules_per_action() {
        let none = Memberships::default();
        let maintainer: Memberships = [member(MemberOf::Project(100), 40)].into_iter().collect();
        let reporter: Memberships = [member(MemberOf::Project(100), 20)].into_iter().collect();
        let shared = runner(RunnerType::Instance, vec![], None);
        let own = runner(RunnerType::Project, vec![project(100, &[])], None);
        let two = runner(
            RunnerType::Project,
            vec![project(100, &[]), project(101, &[])],
            None,
        );

        assert!(
            check_read(USER, &shared, &none).is_ok(),
            "anyone reads an instance runner"
        );
        assert!(check_read(USER, &own, &maintainer).is_ok());
        assert_eq!(
            forbidden_reason(check_read(USER, &own, &reporter)),
            "403 Forbidden - No access granted"
        );
        assert!(check_read(ADMIN, &own, &none).is_ok());

        assert!(
            check_update(USER, &shared, &none).is_err(),
            "non-admins cannot update instance runners"
        );
        assert!(check_update(USER, &own, &maintainer).is_ok());

        assert_eq!(
            forbidden_reason(check_delete(USER, &two, &maintainer)),
            "403 Forbidden - Runner associated with more than one project"
        );
        assert_eq!(
            forbidden_reason(check_delete(USER, &two, &none)),
            "403 Forbidden - Runner associated with more than one project",
            "checked before ownership"
        );
        assert!(check_delete(USER, &own, &maintainer).is_ok());
        assert!(check_delete(ADMIN, &two, &none).is_ok());

        assert!(
            check_read_jobs(USER, &shared, &none).is_err(),
            "jobs of an instance runner: admins only"
        );
        assert!(check_read_jobs(ADMIN, &shared, &none).is_ok());
        assert!(check_read_jobs(USER, &own, &maintainer).is_ok());
    }

    #[test]
    fn details_show_only_what_the_caller_can_see() {
        let r = runner(
            RunnerType::Project,
            vec![project(100, &[]), project(101, &[])],
            None,
        );
        let guest_on_one: Memberships = [member(MemberOf::Project(101), 10)].into_iter().collect();
        let ids = |ps: Vec<&ProjectRef>| ps.iter().map(|p| p.id).collect::<Vec<_>>();
        assert_eq!(ids(visible_projects(USER, &r, &guest_on_one)), [101]);
        assert_eq!(
            ids(visible_projects(ADMIN, &r, &Memberships::default())),
            [100, 101]
        );
    }

    #[test]
    fn sources_cover_projects_groups_and_ancestors_once() {
        let r = runner(
            RunnerType::Project,
            vec![project(100, &[10, 11]), project(101, &[10])],
            None,
        );
        assert_eq!(
            membership_sources(&r),
            [
                MemberOf::Group(10),
                MemberOf::Group(11),
                MemberOf::Project(100),
                MemberOf::Project(101)
            ]
        );
    }
}
