//! Runner token expiry (modern-runners.md, "Token lifecycle"): an instance interval and
//! per-group and per-project overrides, in seconds; the shortest that applies to a runner sets
//! its token's `token_expires_at` when the token is made (creation, registration, rotation).
//! Changing a setting never touches tokens already made.

use crate::runner::{Runner, RunnerType};
use crate::time::Timestamp;
use std::collections::BTreeMap;

/// The expiry settings, all held in the instance settings item so that making a token reads
/// one item (beside the reads it makes anyway).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenExpiry {
    /// `runner_token_expiration_interval`: applies to every runner.
    pub instance: Option<i64>,
    /// A group's interval: applies to its group runners and its projects' runners, and to
    /// everything below it.
    pub groups: BTreeMap<i64, i64>,
    /// A project's interval: applies to the runners enabled in it.
    pub projects: BTreeMap<i64, i64>,
}

impl TokenExpiry {
    /// The interval for a token of `runner`: the shortest of the instance's and of every group
    /// and project the runner belongs to (directly or below). `None`: the token never expires.
    pub fn interval_for(&self, runner: &Runner) -> Option<i64> {
        let group = |id: &i64| self.groups.get(id).copied();
        let scoped: Vec<i64> = match runner.runner_type {
            RunnerType::Instance => Vec::new(),
            RunnerType::Group => runner
                .group
                .iter()
                .flat_map(|g| std::iter::once(&g.id).chain(&g.ancestor_ids))
                .filter_map(group)
                .collect(),
            RunnerType::Project => runner
                .projects
                .iter()
                .flat_map(|p| {
                    let own = self.projects.get(&p.id).copied();
                    own.into_iter().chain(p.group_ids.iter().filter_map(group))
                })
                .collect(),
        };
        self.instance.into_iter().chain(scoped).min()
    }

    /// When a token made now for `runner` expires.
    pub fn expires_at(&self, runner: &Runner, now: Timestamp) -> Option<Timestamp> {
        self.interval_for(runner).map(|seconds| {
            Timestamp::from_millis(now.millis().saturating_add(seconds.saturating_mul(1000)))
        })
    }
}

/// Whether a token with this expiry is still good at `now` (GitLab: `token_expires_at IS NULL
/// OR token_expires_at >= NOW()`).
pub fn unexpired(expires_at: Option<Timestamp>, now: Timestamp) -> bool {
    expires_at.is_none_or(|at| at >= now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::TokenDigest;
    use crate::runner::{GroupRef, ProjectRef};

    fn runner(runner_type: RunnerType) -> Runner {
        let mut runner = Runner::new(
            1,
            runner_type,
            TokenDigest::of("t"),
            Timestamp::from_millis(0),
        );
        match runner_type {
            RunnerType::Group => {
                runner.group = Some(GroupRef {
                    id: 11,
                    name: "sub".into(),
                    full_path: "top/sub".into(),
                    ancestor_ids: vec![10],
                });
            }
            RunnerType::Project => {
                runner.projects = vec![ProjectRef {
                    id: 100,
                    name: "p".into(),
                    name_with_namespace: "top / sub / p".into(),
                    path: "p".into(),
                    path_with_namespace: "top/sub/p".into(),
                    description: None,
                    created_at: Timestamp::from_millis(0),
                    group_ids: vec![10, 11],
                }];
            }
            RunnerType::Instance => {}
        }
        runner
    }

    #[test]
    fn nothing_set_means_no_expiry() {
        let expiry = TokenExpiry::default();
        for t in [RunnerType::Instance, RunnerType::Group, RunnerType::Project] {
            assert_eq!(expiry.interval_for(&runner(t)), None);
            assert_eq!(
                expiry.expires_at(&runner(t), Timestamp::from_millis(5)),
                None
            );
        }
    }

    #[test]
    fn the_shortest_interval_that_applies_wins() {
        let expiry = TokenExpiry {
            instance: Some(86_400),
            groups: [(10, 7_200), (11, 36_000), (99, 60)].into(),
            projects: [(100, 3_600), (101, 1)].into(),
        };
        assert_eq!(
            expiry.interval_for(&runner(RunnerType::Instance)),
            Some(86_400)
        );
        // The ancestor's 2 h beats the group's own 10 h; group 99 is unrelated.
        assert_eq!(expiry.interval_for(&runner(RunnerType::Group)), Some(7_200));
        // The project's own hour beats its groups'; project 101 is unrelated.
        assert_eq!(
            expiry.interval_for(&runner(RunnerType::Project)),
            Some(3_600)
        );
        assert_eq!(
            expiry.expires_at(&runner(RunnerType::Project), Timestamp::from_millis(1_000)),
            Some(Timestamp::from_millis(3_601_000))
        );

        let overrides_only = TokenExpiry {
            groups: [(11, 600)].into(),
            ..TokenExpiry::default()
        };
        assert_eq!(
            overrides_only.interval_for(&runner(RunnerType::Instance)),
            None
        );
        assert_eq!(
            overrides_only.interval_for(&runner(RunnerType::Group)),
            Some(600)
        );
        assert_eq!(
            overrides_only.interval_for(&runner(RunnerType::Project)),
            Some(600)
        );
    }

    #[test]
    fn a_token_is_good_up_to_and_including_its_expiry() {
        let at = Timestamp::from_millis(1_000);
        assert!(unexpired(None, at));
        assert!(unexpired(Some(at), at));
        assert!(!unexpired(Some(Timestamp::from_millis(999)), at));
    }
}
