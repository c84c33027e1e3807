//! The filters every runner list takes: `scope` (deprecated), `type`, `status`, `tag_list`, and
//! the additive `paused`. Several combine with AND.

use crate::params::ParamReader;
use crate::runner::{MAX_TAG_CHARS, Runner, RunnerType};
use crate::time::Timestamp;

/// Which list is being filtered: owned runners take fewer scopes than `/runners/all` and a
/// project's list; a group's list takes no `scope` at all (GitLab ignores it there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunnerList {
    Owned,
    All,
    Group,
}

/// The owned list's scopes are exactly the statuses.
const OWNED_SCOPES: [&str; 6] = STATUSES;
const ALL_SCOPES: [&str; 11] = [
    "specific",
    "shared",
    "instance_type",
    "group_type",
    "project_type",
    "active",
    "paused",
    "online",
    "offline",
    "never_contacted",
    "stale",
];
/// 12.x's four, and current GitLab's `never_contacted` and `stale` (additive).
const STATUSES: [&str; 6] = [
    "active",
    "paused",
    "online",
    "offline",
    "never_contacted",
    "stale",
];
/// A runner not seen for this long (or never, and created this long ago) is stale.
pub const STALE_AFTER_MS: i64 = 7 * 24 * 3_600_000;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunnerFilter {
    scope: Option<String>,
    runner_type: Option<RunnerType>,
    status: Option<String>,
    tags: Option<Vec<String>>,
    paused: Option<bool>,
    /// `version_prefix`, without a trailing dot.
    version_prefix: Option<String>,
}

/// A runner attribute value that lists filter on and that only the runner's own writes change
/// (registration, `PUT /runners/:id`): each of its tags, and whether it is paused. Each facet
/// is counted and indexed beside the runner (`store::listing`), so that a list filtered on one
/// is found from counts like an unfiltered one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Facet {
    Tag(String),
    Paused(bool),
    /// A tag together with the active flag, so that the common `tag_list=x&paused=false` (or
    /// `status=active`) is one facet: counts of two facets cannot place their intersection.
    TagPaused(String, bool),
    /// Never contacted: the runner's first heartbeat takes it out.
    NeverContacted,
    /// A prefix of the version the runner last reported, cut at a dot (`15`, `15.1`,
    /// `15.1.2` of `15.1.2`): `version_prefix` matches whole components. Only prefixes of at
    /// most [`MAX_VERSION_PREFIX_COMPONENTS`] components and [`MAX_TAG_CHARS`] characters are
    /// facets, so that a runner has a few and their keys stay short; a longer
    /// `version_prefix` walks.
    VersionPrefix(String),
}

/// The most components (dot-separated) of a version prefix that is a facet.
pub const MAX_VERSION_PREFIX_COMPONENTS: usize = 3;

/// Whether a `version_prefix` (without its trailing dot) is short enough to be a facet.
fn is_counted_version_prefix(prefix: &str) -> bool {
    prefix.matches('.').count() < MAX_VERSION_PREFIX_COMPONENTS
        && prefix.chars().count() <= MAX_TAG_CHARS
}

/// The version prefix facets of a runner that reported `version`: each prefix that ends where
/// one of its first dots starts, and the whole version, of at most
/// [`MAX_VERSION_PREFIX_COMPONENTS`] components and [`MAX_TAG_CHARS`] characters. Linear in
/// the version's length (a reported version may hold 2,048 characters, all dots).
pub fn version_prefixes(version: &str) -> Vec<String> {
    let mut ends: Vec<usize> = version
        .match_indices('.')
        .map(|(at, _)| at)
        .take(MAX_VERSION_PREFIX_COMPONENTS)
        .collect();
    if ends.len() < MAX_VERSION_PREFIX_COMPONENTS {
        ends.push(version.len());
    }
    ends.into_iter()
        .map(|end| &version[..end])
        .filter(|prefix| prefix.chars().count() <= MAX_TAG_CHARS)
        .map(str::to_owned)
        .collect()
}

impl Facet {
    /// Every facet of a runner.
    pub fn of(runner: &Runner) -> std::collections::BTreeSet<Facet> {
        let paused = !runner.active;
        runner
            .tag_list
            .iter()
            .flat_map(|tag| {
                [
                    Facet::Tag(tag.clone()),
                    Facet::TagPaused(tag.clone(), paused),
                ]
            })
            .chain([Facet::Paused(paused)])
            .chain(
                runner
                    .contacted_at
                    .is_none()
                    .then_some(Facet::NeverContacted),
            )
            .chain(
                runner
                    .info
                    .version
                    .iter()
                    .flat_map(|version| version_prefixes(version))
                    .map(Facet::VersionPrefix),
            )
            .collect()
    }

    /// The facet's name in keys and counter attributes.
    pub fn name(&self) -> String {
        match self {
            Facet::Tag(tag) => format!("tag:{tag}"),
            Facet::Paused(true) => "paused".to_owned(),
            Facet::Paused(false) => "active".to_owned(),
            Facet::NeverContacted => "never_contacted".to_owned(),
            // The flag first: no tag facet's name starts this way.
            Facet::TagPaused(tag, true) => format!("paused+tag:{tag}"),
            Facet::TagPaused(tag, false) => format!("active+tag:{tag}"),
            Facet::VersionPrefix(prefix) => format!("version:{prefix}"),
        }
    }
}

/// What a counted list keeps of the runners of its types: those with a facet, those
/// contacted after a time (online) or not (offline: never, or not since), or those last seen
/// (contacted, or else created) before a time (stale).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Criterion {
    Facet(Facet),
    Online { since: Timestamp },
    Offline { since: Timestamp },
    Stale { before: Timestamp },
}

/// The time after which a runner's last contact must lie for it to be online at `now`: the
/// `since` of [`Criterion::Online`] and [`Criterion::Offline`].
pub fn online_since(now: Timestamp, online_timeout_secs: i64) -> Timestamp {
    Timestamp::from_millis(
        now.millis()
            .saturating_sub(online_timeout_secs.saturating_mul(1000)),
    )
}

/// The time before which a runner last seen is stale at `now`: the `before` of
/// [`Criterion::Stale`].
pub fn stale_before(now: Timestamp) -> Timestamp {
    Timestamp::from_millis(now.millis().saturating_sub(STALE_AFTER_MS))
}

/// When a runner was last seen, for staleness: its last contact, or else its creation.
pub fn last_seen(contacted_at: Option<Timestamp>, created_at: Timestamp) -> Timestamp {
    contacted_at.unwrap_or(created_at)
}

impl Criterion {
    /// Whether `runner` is kept: a list leaves out an entry whose runner no longer matches.
    pub fn admits(&self, runner: &Runner) -> bool {
        let online = |since: &Timestamp| runner.contacted_at.is_some_and(|at| at > *since);
        match self {
            Criterion::Facet(facet) => Facet::of(runner).contains(facet),
            Criterion::Online { since } => online(since),
            Criterion::Offline { since } => !online(since),
            Criterion::Stale { before } => {
                last_seen(runner.contacted_at, runner.created_at) < *before
            }
        }
    }
}

/// What a filter looks at; a list reads only these attributes for the runners it skips.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerFacts {
    pub id: i64,
    pub runner_type: RunnerType,
    pub active: bool,
    pub contacted_at: Option<Timestamp>,
    pub tag_list: Vec<String>,
    pub created_at: Timestamp,
    pub version: Option<String>,
}

impl From<&Runner> for RunnerFacts {
    fn from(r: &Runner) -> Self {
        Self {
            id: r.id,
            runner_type: r.runner_type,
            active: r.active,
            contacted_at: r.contacted_at,
            tag_list: r.tag_list.clone(),
            created_at: r.created_at,
            version: r.info.version.clone(),
        }
    }
}

/// `version_prefix`: GitLab's `/^[\d+.]+/` (digits, `+` and dots at the start), else
/// `version_prefix is invalid`. `15.0`, `15.0.` and `16` match whole version components, on the
/// version the runner last reported (GitLab matches its managers' versions).
fn read_version_prefix(reader: &mut ParamReader<'_>) -> Option<String> {
    let prefix = reader.string("version_prefix")?;
    let valid = prefix
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_digit() || c == '+' || c == '.');
    if !valid {
        reader.problem("version_prefix is invalid");
        return None;
    }
    Some(prefix.trim_end_matches('.').to_owned())
}

impl RunnerFilter {
    pub fn read(reader: &mut ParamReader<'_>, list: RunnerList) -> Self {
        let scope = match list {
            RunnerList::Owned => reader.one_of("scope", &OWNED_SCOPES),
            RunnerList::All => reader.one_of("scope", &ALL_SCOPES),
            RunnerList::Group => None,
        };
        Self {
            scope,
            runner_type: reader
                .one_of("type", &RunnerType::NAMES)
                .as_deref()
                .and_then(RunnerType::parse),
            status: reader.one_of("status", &STATUSES),
            tags: reader.tags("tag_list").filter(|tags| !tags.is_empty()),
            paused: reader.bool("paused"),
            version_prefix: read_version_prefix(reader),
        }
    }

    /// The one runner type every match must have, if the filter implies one (so a list can
    /// walk that type's index instead of all runners).
    pub fn single_type(&self) -> Option<RunnerType> {
        let from_scope = match self.scope.as_deref() {
            Some("shared") => Some(RunnerType::Instance),
            Some(other) => RunnerType::parse(other),
            None => None,
        };
        self.runner_type.or(from_scope)
    }

    /// The runner types a match may have, when the filter asks nothing but a type (`type`, or
    /// a type `scope`): such a list is counted per type and needs no runner's attributes.
    /// `None` when the filter looks at anything else.
    pub fn only_types(&self) -> Option<Vec<RunnerType>> {
        // The time only matters to `online`, `offline` and `stale`, which are criteria.
        let (types, criteria) = self.counted_criteria(Timestamp::from_millis(0), 0)?;
        criteria.is_empty().then_some(types)
    }

    /// The runner types a match may have and the criteria it must all meet at `now`, when that
    /// is all the filter asks (types, tags, active or paused, never contacted, online or
    /// offline, stale, a version prefix of up to 3 components): such a list can be counted.
    /// `None` when it asks for a longer version prefix. A filter that no runner passes
    /// (`status=active` with `paused=true`) has no types.
    pub fn counted_criteria(
        &self,
        now: Timestamp,
        online_timeout_secs: i64,
    ) -> Option<(Vec<RunnerType>, Vec<Criterion>)> {
        if let Some(prefix) = &self.version_prefix
            && !is_counted_version_prefix(prefix)
        {
            return None;
        }
        let since = online_since(now, online_timeout_secs);
        let mut stale = false;
        let mut types = vec![RunnerType::Instance, RunnerType::Group, RunnerType::Project];
        let mut paused = std::collections::BTreeSet::new();
        let mut online = std::collections::BTreeSet::new();
        let mut never_contacted = false;
        for word in [self.scope.as_deref(), self.status.as_deref()]
            .into_iter()
            .flatten()
        {
            match word {
                "active" => _ = paused.insert(false),
                "paused" => _ = paused.insert(true),
                "online" => _ = online.insert(true),
                "offline" => _ = online.insert(false),
                "never_contacted" => never_contacted = true,
                "stale" => stale = true,
                "specific" => types.retain(|t| *t != RunnerType::Instance),
                "shared" => types.retain(|t| *t == RunnerType::Instance),
                other => {
                    let only = RunnerType::parse(other)?;
                    types.retain(|t| *t == only);
                }
            }
        }
        if let Some(wanted) = self.runner_type {
            types.retain(|t| *t == wanted);
        }
        paused.extend(self.paused);
        if paused.len() > 1 || online.len() > 1 {
            types.clear();
        }
        let tags = self.tags.iter().flatten();
        if tags.clone().any(|tag| tag.chars().count() > MAX_TAG_CHARS) {
            // No runner carries a tag that long, and its key would not fit DynamoDB's limits.
            return Some((Vec::new(), Vec::new()));
        }
        let tags: Vec<&String> = tags.collect();
        let mut facets: Vec<Facet> = match (paused.len(), tags.as_slice()) {
            // One tag and the active flag: their pair is one facet.
            (1, [tag]) => paused
                .iter()
                .map(|paused| Facet::TagPaused((*tag).clone(), *paused))
                .collect(),
            // The tags are already distinct (`ParamReader::tags`).
            _ => paused
                .into_iter()
                .map(Facet::Paused)
                .chain(tags.iter().map(|tag| Facet::Tag((*tag).clone())))
                .collect(),
        };
        if never_contacted {
            facets.push(Facet::NeverContacted);
        }
        facets.extend(self.version_prefix.clone().map(Facet::VersionPrefix));
        let mut criteria: Vec<Criterion> = facets.into_iter().map(Criterion::Facet).collect();
        criteria.extend(online.into_iter().map(|online| match online {
            true => Criterion::Online { since },
            false => Criterion::Offline { since },
        }));
        if stale {
            criteria.push(Criterion::Stale {
                before: stale_before(now),
            });
        }
        Some((types, criteria))
    }

    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    pub fn matches(&self, runner: &RunnerFacts, now: Timestamp, online_timeout_secs: i64) -> bool {
        let online = runner
            .contacted_at
            .is_some_and(|at| at.within(now, online_timeout_secs.saturating_mul(1000)));
        let stale = last_seen(runner.contacted_at, runner.created_at) < stale_before(now);
        let word = |word: &str| match word {
            "never_contacted" => runner.contacted_at.is_none(),
            "stale" => stale,
            "active" => runner.active,
            "paused" => !runner.active,
            "online" => online,
            "offline" => !online,
            "specific" => runner.runner_type != RunnerType::Instance,
            "shared" => runner.runner_type == RunnerType::Instance,
            other => RunnerType::parse(other) == Some(runner.runner_type),
        };
        self.scope.as_deref().is_none_or(word)
            && self.runner_type.is_none_or(|t| t == runner.runner_type)
            && self.status.as_deref().is_none_or(word)
            && self
                .tags
                .as_ref()
                .is_none_or(|tags| tags.iter().all(|t| runner.tag_list.contains(t)))
            && self.paused.is_none_or(|paused| paused != runner.active)
            && self.version_prefix.as_deref().is_none_or(|prefix| {
                runner.version.as_deref().is_some_and(|v| {
                    v == prefix
                        || v.strip_prefix(prefix)
                            .is_some_and(|rest| rest.starts_with('.'))
                })
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::Params;

    fn filter(query: &str, list: RunnerList) -> Result<RunnerFilter, String> {
        let params = Params::from_query(query).unwrap();
        let mut reader = params.reader();
        let filter = RunnerFilter::read(&mut reader, list);
        reader
            .finish()
            .map(|()| filter)
            .map_err(|e| e.body()["error"].as_str().unwrap_or_default().to_owned())
    }

    fn facts(
        id: i64,
        runner_type: RunnerType,
        active: bool,
        contacted_ms_ago: Option<i64>,
        tags: &[&str],
    ) -> RunnerFacts {
        RunnerFacts {
            id,
            runner_type,
            active,
            contacted_at: contacted_ms_ago.map(|ago| Timestamp::from_millis(NOW - ago)),
            tag_list: tags.iter().map(|t| (*t).to_owned()).collect(),
            created_at: Timestamp::from_millis(NOW - 1000),
            version: None,
        }
    }

    #[test]
    fn a_counted_version_prefix_is_a_facet_of_exactly_the_runners_it_matches() {
        assert_eq!(version_prefixes("15.1.2"), ["15", "15.1", "15.1.2"]);
        assert_eq!(
            version_prefixes("16.1.0~beta.5.gf131a6a1"),
            ["16", "16.1", "16.1.0~beta"],
            "three components at most"
        );
        assert_eq!(version_prefixes(".5"), ["", ".5"]);
        assert!(version_prefixes(&"1".repeat(MAX_TAG_CHARS + 1)).is_empty());
        let versions = [
            "15", "15.1", "15.1.2", "15.10.0", "16.0.0.1", ".5", "15.1.", "x",
        ];
        let prefixes = [
            "15", "15.1", "15.1.2", "15.", "1", "16.0.0", "16.0.0.1", ".",
        ];
        for version in versions {
            let mut runner = Runner::new(
                1,
                RunnerType::Instance,
                crate::auth::TokenDigest::of("t"),
                Timestamp::from_millis(0),
            );
            runner.info.version = Some(version.to_owned());
            let facts = RunnerFacts::from(&runner);
            for prefix in prefixes {
                let filter = filter(&format!("version_prefix={prefix}"), RunnerList::All).unwrap();
                let matched = filter.matches(&facts, Timestamp::from_millis(NOW), 3_600);
                match filter.counted_criteria(Timestamp::from_millis(NOW), 3_600) {
                    Some((_, criteria)) => {
                        let [Criterion::Facet(facet)] = criteria.as_slice() else {
                            panic!("{prefix}: {criteria:?}");
                        };
                        assert_eq!(
                            Facet::of(&runner).contains(facet),
                            matched,
                            "{prefix} of {version}"
                        );
                    }
                    None => assert_eq!(prefix, "16.0.0.1", "only longer prefixes walk"),
                }
            }
        }
    }

    #[test]
    fn type_only_filters_name_their_types() {
        let types = |query: &str| filter(query, RunnerList::All).unwrap().only_types();
        use RunnerType::{Group, Instance, Project};
        assert_eq!(types(""), Some(vec![Instance, Group, Project]));
        assert_eq!(types("scope=specific"), Some(vec![Group, Project]));
        assert_eq!(types("scope=shared"), Some(vec![Instance]));
        assert_eq!(types("type=group_type"), Some(vec![Group]));
        assert_eq!(
            types("scope=specific&type=project_type"),
            Some(vec![Project])
        );
        assert_eq!(types("scope=shared&type=project_type"), Some(vec![]));
        assert_eq!(types("scope=online"), None);
        assert_eq!(types("scope=stale"), None);
        assert_eq!(types("type=group_type&tag_list=a"), None);
        assert_eq!(types("paused=false"), None);
    }

    #[test]
    fn filters_on_types_tags_the_active_flag_and_contact_are_counted_criteria() {
        use RunnerType::{Group, Instance, Project};
        let since = Timestamp::from_millis(NOW - 3_600_000);
        let criteria = |query: &str| {
            filter(query, RunnerList::All)
                .unwrap()
                .counted_criteria(Timestamp::from_millis(NOW), 3_600)
        };
        let tag = |t: &str| Criterion::Facet(Facet::Tag(t.to_owned()));
        let paused = |p: bool| Criterion::Facet(Facet::Paused(p));
        assert_eq!(
            criteria("tag_list=docker,linux&scope=specific"),
            Some((vec![Group, Project], vec![tag("docker"), tag("linux")]))
        );
        assert_eq!(
            criteria("status=paused&type=instance_type"),
            Some((vec![Instance], vec![paused(true)]))
        );
        assert_eq!(
            criteria("scope=active&paused=false&tag_list=docker,docker"),
            Some((
                vec![Instance, Group, Project],
                vec![Criterion::Facet(Facet::TagPaused("docker".into(), false))]
            )),
            "the same criterion twice is one, and a tag with the active flag one facet"
        );
        assert_eq!(
            criteria("tag_list=a,b&status=paused").map(|(_, c)| c),
            Some(vec![paused(true), tag("a"), tag("b")]),
            "two tags and the flag stay three"
        );
        assert_eq!(
            criteria("status=active&paused=true"),
            Some((vec![], vec![paused(false), paused(true)])),
            "nothing passes"
        );
        assert_eq!(
            criteria(&format!("tag_list={}", "x".repeat(MAX_TAG_CHARS + 1))),
            Some((vec![], vec![])),
            "a tag no runner can carry matches nothing, and is never looked up"
        );
        assert_eq!(
            criteria("scope=never_contacted&type=group_type"),
            Some((vec![Group], vec![Criterion::Facet(Facet::NeverContacted)]))
        );
        assert_eq!(
            criteria("status=online&type=project_type"),
            Some((vec![Project], vec![Criterion::Online { since }]))
        );
        assert_eq!(
            criteria("scope=offline&tag_list=a"),
            Some((
                vec![Instance, Group, Project],
                vec![tag("a"), Criterion::Offline { since }]
            ))
        );
        assert_eq!(
            criteria("scope=online&status=offline"),
            Some((
                vec![],
                vec![Criterion::Offline { since }, Criterion::Online { since }]
            )),
            "nothing is both"
        );
        let before = Timestamp::from_millis(NOW - STALE_AFTER_MS);
        assert_eq!(
            criteria("status=stale&type=group_type"),
            Some((vec![Group], vec![Criterion::Stale { before }]))
        );
        assert_eq!(
            criteria("scope=stale&status=never_contacted").map(|(_, c)| c),
            Some(vec![
                Criterion::Facet(Facet::NeverContacted),
                Criterion::Stale { before }
            ])
        );
        assert_eq!(
            criteria("version_prefix=15.1.&type=group_type"),
            Some((
                vec![Group],
                vec![Criterion::Facet(Facet::VersionPrefix("15.1".into()))]
            ))
        );
        for walked in [
            "version_prefix=15.1.2.3",
            "scope=stale&version_prefix=1.2.3.4",
        ] {
            assert_eq!(criteria(walked), None, "{walked}");
        }
        let mut runner = Runner::new(
            1,
            Project,
            crate::auth::TokenDigest::of("t"),
            Timestamp::from_millis(0),
        );
        runner.tag_list = vec!["b".into(), "a".into()];
        runner.active = false;
        let names: Vec<String> = Facet::of(&runner).iter().map(Facet::name).collect();
        assert_eq!(
            names,
            [
                "tag:a",
                "tag:b",
                "paused",
                "paused+tag:a",
                "paused+tag:b",
                "never_contacted"
            ]
        );
        assert!(
            Criterion::Offline { since }.admits(&runner),
            "never contacted"
        );
        runner.contacted_at = Some(Timestamp::from_millis(1));
        assert!(!Facet::of(&runner).contains(&Facet::NeverContacted));
        assert!(Criterion::Offline { since }.admits(&runner));
        runner.contacted_at = Some(since);
        assert!(
            Criterion::Offline { since }.admits(&runner),
            "exactly the timeout ago"
        );
        runner.contacted_at = Some(Timestamp::from_millis(since.millis() + 1));
        assert!(Criterion::Online { since }.admits(&runner));
        assert!(!Criterion::Offline { since }.admits(&runner));
    }

    #[test]
    fn stale_never_contacted_and_version_prefix() {
        const DAY: i64 = 24 * 3_600_000;
        let old = |mut f: RunnerFacts| {
            f.created_at = Timestamp::from_millis(NOW - 8 * DAY);
            f
        };
        let versioned = |mut f: RunnerFacts, v: &str| {
            f.version = Some(v.to_owned());
            f
        };
        let runners = [
            versioned(
                facts(1, RunnerType::Instance, true, Some(1000), &[]),
                "16.1.2",
            ),
            versioned(
                facts(2, RunnerType::Instance, true, Some(8 * DAY), &[]),
                "16.10.0",
            ),
            facts(3, RunnerType::Instance, true, None, &[]),
            old(facts(4, RunnerType::Instance, true, None, &[])),
            versioned(
                facts(5, RunnerType::Instance, true, Some(1000), &[]),
                "15.0.1",
            ),
        ];
        let all = RunnerList::All;
        assert_eq!(ids("status=never_contacted", all, &runners), [3, 4]);
        assert_eq!(ids("status=stale", all, &runners), [2, 4]);
        assert_eq!(ids("scope=stale", RunnerList::Owned, &runners), [2, 4]);
        assert_eq!(ids("version_prefix=16", all, &runners), [1, 2]);
        assert_eq!(ids("version_prefix=16.1", all, &runners), [1], "not 16.10");
        assert_eq!(ids("version_prefix=16.1.", all, &runners), [1]);
        assert_eq!(ids("version_prefix=15.0.1", all, &runners), [5]);
        assert_eq!(
            filter("version_prefix=V15", all).unwrap_err(),
            "version_prefix is invalid"
        );
        assert_eq!(
            filter("status=bogus", all).unwrap_err(),
            "status does not have a valid value"
        );
    }

    const NOW: i64 = 100_000_000;

    fn ids(query: &str, list: RunnerList, runners: &[RunnerFacts]) -> Vec<i64> {
        let f = filter(query, list).unwrap();
        runners
            .iter()
            .filter(|r| f.matches(r, Timestamp::from_millis(NOW), 3600))
            .map(|r| r.id)
            .collect()
    }

    #[test]
    fn each_filter_and_their_combination() {
        let runners = [
            facts(1, RunnerType::Instance, true, Some(1000), &["tag1", "tag2"]),
            facts(2, RunnerType::Project, false, Some(1000), &["tag2"]),
            facts(3, RunnerType::Group, true, None, &[]),
            facts(
                4,
                RunnerType::Project,
                true,
                Some(7_200_000),
                &["tag1", "tag2", "x"],
            ),
        ];
        let all = RunnerList::All;
        assert_eq!(ids("", all, &runners), [1, 2, 3, 4]);
        assert_eq!(ids("scope=shared", all, &runners), [1]);
        assert_eq!(ids("scope=specific", all, &runners), [2, 3, 4]);
        assert_eq!(ids("scope=paused", all, &runners), [2]);
        assert_eq!(ids("scope=online", all, &runners), [1, 2]);
        assert_eq!(
            ids("scope=offline", all, &runners),
            [3, 4],
            "never contacted is offline for the filter"
        );
        assert_eq!(ids("type=project_type", all, &runners), [2, 4]);
        assert_eq!(ids("status=active", all, &runners), [1, 3, 4]);
        assert_eq!(ids("tag_list=tag1,tag2", all, &runners), [1, 4]);
        assert_eq!(
            ids("tag_list=TAG1", all, &runners),
            Vec::<i64>::new(),
            "case-sensitive"
        );
        assert_eq!(ids("paused=True", all, &runners), [2]);
        assert_eq!(
            ids("paused=false&type=project_type&tag_list=x", all, &runners),
            [4]
        );
    }

    #[test]
    fn invalid_values_are_gitlabs_400s_in_declaration_order() {
        assert_eq!(
            filter("scope=unknown", RunnerList::All).unwrap_err(),
            "scope does not have a valid value"
        );
        assert_eq!(
            filter("scope=shared", RunnerList::Owned).unwrap_err(),
            "scope does not have a valid value"
        );
        assert_eq!(
            filter("type=bogus&status=bogus", RunnerList::All).unwrap_err(),
            "type does not have a valid value, status does not have a valid value"
        );
        assert_eq!(
            filter("paused=perhaps", RunnerList::Owned).unwrap_err(),
            "paused is invalid"
        );
        assert!(filter("scope=active&status=offline", RunnerList::Owned).is_ok());
        assert!(filter("", RunnerList::Owned).unwrap().is_empty());
    }
}
