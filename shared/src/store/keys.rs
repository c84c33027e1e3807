//! The single table's key layout. `docs/data-model.md` lists every item and access pattern;
//! this module is the only place that spells keys.

pub const PK: &str = "pk";
pub const SK: &str = "sk";

/// GSI1, overloaded: all runners by id (`RUNNERS`), and a user's memberships (`USER#<id>`).
pub const GSI1: &str = "gsi1";
pub const GSI1_PK: &str = "gsi1pk";
pub const GSI1_SK: &str = "gsi1sk";
/// GSI2: runners by type (`RUNNERS#<type>`), ordered by id.
pub const GSI2: &str = "gsi2";
pub const GSI2_PK: &str = "gsi2pk";
pub const GSI2_SK: &str = "gsi2sk";
/// GSI3, keys only: runners by type and id bucket (`RUNNER_IDS#<type>#<bucket>`), ordered by id.
/// An entry is about 70 bytes and a heartbeat never rewrites it, so locating a page deep in a
/// runner list reads one bucket's keys, not the full items before it.
pub const GSI3: &str = "gsi3";
pub const GSI3_PK: &str = "gsi3pk";
pub const GSI3_SK: &str = "gsi3sk";

/// How many consecutive runner ids share a bucket of the runner index (GSI3) and its counters.
pub const RUNNER_BUCKET_SIZE: i64 = 1_000;
/// Each bucket's count is spread over this many counter items (by id), so that runners made at
/// the same moment rarely contend for one item.
pub const RUNNER_COUNT_SLOTS: i64 = 4;

/// Ids in sort keys are zero-padded so that string order is numeric order.
pub fn padded(id: i64) -> String {
    format!("{id:020}")
}

pub fn runner(id: i64) -> (String, String) {
    (format!("RUNNER#{id}"), "RUNNER".to_owned())
}

pub const ALL_RUNNERS: &str = "RUNNERS";

/// A runner's managers live in the runner's partition, so they are one query away and go with it.
pub const MANAGER_PREFIX: &str = "MANAGER#";

/// A job running on a runner, in the runner's partition: whether the runner is busy is one
/// query beside its other items.
pub const RUNNING_PREFIX: &str = "RUNNING#";

pub fn running_job(runner_id: i64, job_id: i64) -> (String, String) {
    (
        runner(runner_id).0,
        format!("{RUNNING_PREFIX}{}", padded(job_id)),
    )
}

pub fn runner_manager(runner_id: i64, system_id: &str) -> (String, String) {
    (runner(runner_id).0, format!("{MANAGER_PREFIX}{system_id}"))
}

pub fn runners_of_type(runner_type: &str) -> String {
    format!("RUNNERS#{runner_type}")
}

pub fn runner_bucket(runner_id: i64) -> i64 {
    runner_id.div_euclid(RUNNER_BUCKET_SIZE)
}

/// The GSI3 partition of a runner of this type and id bucket.
pub fn runner_ids(runner_type: &str, bucket: i64) -> String {
    format!("RUNNER_IDS#{runner_type}#{bucket}")
}

/// The facet index entry of a runner with this facet (a tag, or its active flag): keys only,
/// one partition per facet, type and id bucket, like the runner id index, so that a list
/// filtered on the facet reads only the runners it shows. The facet goes last because a tag
/// may hold any character.
pub fn runner_facet(facet: &str, runner_type: &str, runner_id: i64) -> (String, String) {
    (
        runner_facet_partition(facet, runner_type, runner_bucket(runner_id)),
        padded(runner_id),
    )
}

pub fn runner_facet_partition(facet: &str, runner_type: &str, bucket: i64) -> String {
    format!("{FACET_PREFIX}{runner_type}#{bucket}#{facet}")
}

pub const FACET_PREFIX: &str = "RUNNER_FACET#";

/// Reads a facet entry's partition back: its runner type and bucket.
pub fn parse_runner_facet(pk: &str) -> Option<(&str, i64)> {
    let mut parts = pk.strip_prefix(FACET_PREFIX)?.split('#');
    let runner_type = parts.next()?;
    let bucket = parts.next()?.parse().ok()?;
    Some((runner_type, bucket))
}

/// The GSI3 keys of a never-contacted runner's `never_contacted` facet entry: a shard, then
/// its creation time and id, so that the never-contacted runners created in a given span are
/// one range read per shard (the runners about to become stale).
pub fn new_runners_by_time(runner_id: i64, created_at: i64) -> (String, String) {
    (
        format!("NEW_RUNNERS_AT#{}", runner_id.rem_euclid(CONTACT_SHARDS)),
        format!("{}#{}", padded(created_at), padded(runner_id)),
    )
}

/// The partition of every facet count: one item per facet, id bucket and slot, with one
/// attribute per runner type (named as the type) counting that bucket's runners of the type with
/// the facet. Each item stays a few hundred bytes however many tags runners carry, and
/// enabling an instance runner in a project moves each of its facets within one item.
pub const RUNNER_FACET_COUNTS: &str = "RUNNER_FACET_COUNTS";

/// The sort key prefix of one facet's count items: the first 128 bits of its SHA-256, so that a
/// tag of 255 characters in any script keeps the key short, and no facet's prefix is another's.
pub fn runner_facet_counts_prefix(facet: &str) -> String {
    let digest = crate::auth::sha256_hex(facet);
    format!("{}#", &digest[..32])
}

/// The end of every count item's sort key: the runner's id bucket and slot (`<bucket,
/// padded>#<id mod 4>`), so that a count item holds at most 250 runners.
fn bucket_and_slot(runner_id: i64) -> String {
    format!(
        "{}#{}",
        padded(runner_bucket(runner_id)),
        runner_id.rem_euclid(RUNNER_COUNT_SLOTS)
    )
}

/// The facet count item that counts this runner (by its bucket and slot) if it has `facet`.
pub fn runner_facet_count(facet: &str, runner_id: i64) -> (String, String) {
    (
        RUNNER_FACET_COUNTS.to_owned(),
        format!(
            "{}{}",
            runner_facet_counts_prefix(facet),
            bucket_and_slot(runner_id)
        ),
    )
}

/// A contacted runner's contact entry: its last contact (`at`, the runner's `contacted_at`),
/// in a partition per type and id bucket ordered by id, so that a page of online or offline
/// runners reads only its buckets' entries; and on GSI3 in contact order
/// ([`runner_contacts_by_time`]), so that the runners whose last contact fell in a given span
/// are one range read.
pub fn runner_contact(runner_type: &str, runner_id: i64) -> (String, String) {
    (
        runner_contact_partition(runner_type, runner_bucket(runner_id)),
        padded(runner_id),
    )
}

pub fn runner_contact_partition(runner_type: &str, bucket: i64) -> String {
    format!("{CONTACT_PREFIX}{runner_type}#{bucket}")
}

pub const CONTACT_PREFIX: &str = "RUNNER_CONTACT#";

/// Reads a contact entry's partition back: its runner type and bucket.
pub fn parse_runner_contact(pk: &str) -> Option<(&str, i64)> {
    let mut parts = pk.strip_prefix(CONTACT_PREFIX)?.split('#');
    let runner_type = parts.next()?;
    let bucket = parts.next()?.parse().ok()?;
    Some((runner_type, bucket))
}

/// The contact entries are spread over this many GSI3 partitions (by id), so that a minute's
/// heartbeats do not all write one.
pub const CONTACT_SHARDS: i64 = 8;

/// The GSI3 keys of a contact entry: its shard, then contact time and id.
pub fn runner_contacts_by_time(runner_id: i64, at: i64) -> (String, String) {
    (
        format!(
            "RUNNER_CONTACTS_AT#{}",
            runner_id.rem_euclid(CONTACT_SHARDS)
        ),
        format!("{}#{}", padded(at), padded(runner_id)),
    )
}

/// How long one span of contact counts lasts: each runner is counted in the span of its last
/// contact, so that the runners online at a time are the counts of the spans after the one
/// holding `now - timeout`, plus the entries of that span's part after it.
pub const CONTACT_SPAN_MS: i64 = 900_000;

pub fn contact_span(at: i64) -> i64 {
    at.div_euclid(CONTACT_SPAN_MS)
}

/// The partition of the contact counts: one item per contact span, id bucket and slot, one
/// count per runner type.
pub const RUNNER_CONTACT_COUNTS: &str = "RUNNER_CONTACT_COUNTS";

/// The contact count item that counts this runner, last contacted `at`.
pub fn runner_contact_count(at: i64, runner_id: i64) -> (String, String) {
    span_count(RUNNER_CONTACT_COUNTS, contact_span(at), runner_id)
}

/// How long one span of the last-seen counts lasts: each runner is counted in the day it was
/// last seen (contacted, or else created), so that the runners seen since a week ago (not
/// stale) are the counts of the days after the one holding that time, plus the entries of
/// that day's part after it.
pub const SEEN_SPAN_MS: i64 = 86_400_000;

pub fn seen_span(at: i64) -> i64 {
    at.div_euclid(SEEN_SPAN_MS)
}

/// The partition of the last-seen counts: one item per day, id bucket and slot, one count per
/// runner type.
pub const RUNNER_SEEN_COUNTS: &str = "RUNNER_SEEN_COUNTS";

/// The last-seen count item that counts this runner, last seen `at`.
pub fn runner_seen_count(at: i64, runner_id: i64) -> (String, String) {
    span_count(RUNNER_SEEN_COUNTS, seen_span(at), runner_id)
}

fn span_count(partition: &str, span: i64, runner_id: i64) -> (String, String) {
    (
        partition.to_owned(),
        format!(
            "{}{}",
            contact_span_prefix(span),
            bucket_and_slot(runner_id)
        ),
    )
}

/// The sort key prefix of one span's counts (of contacts, or of last-seen days).
pub fn contact_span_prefix(span: i64) -> String {
    format!("{}#", padded(span))
}

/// Reads a contact or last-seen count's sort key back: its span and bucket.
pub fn parse_runner_contact_count(sk: &str) -> Option<(i64, i64)> {
    let mut parts = sk.split('#');
    let span = parts.next()?.parse().ok()?;
    let bucket = parts.next()?.parse().ok()?;
    Some((span, bucket))
}

/// The partition of the count changes a runner write could not fit in its transaction
/// (`store::listing_outbox`), by when they were written.
pub const LISTING_OUTBOX: &str = "LISTING_OUTBOX";

/// Reads a facet count's sort key back: the bucket it counts.
pub fn parse_runner_facet_count(sk: &str) -> Option<i64> {
    sk.split('#').nth(1)?.parse().ok()
}

/// The member set beside a count attribute of a count item: the ids of the runners it counts
/// (a number set, absent when none), changed by the same update as the count.
pub fn members_of(count_attribute: &str) -> String {
    format!("{count_attribute}_ids")
}

/// The partition of every runner count, one item per type, bucket and slot.
pub const RUNNER_COUNTS: &str = "RUNNER_COUNTS";

/// The counter item that counts this runner (by its type, bucket and slot).
pub fn runner_count(runner_type: &str, runner_id: i64) -> (String, String) {
    (
        RUNNER_COUNTS.to_owned(),
        format!("{runner_type}#{}", bucket_and_slot(runner_id)),
    )
}

/// Reads a counter's sort key back: the type and bucket it counts.
pub fn parse_runner_count(sk: &str) -> Option<(&str, i64)> {
    let mut parts = sk.split('#');
    let runner_type = parts.next()?;
    let bucket = parts.next()?.parse().ok()?;
    Some((runner_type, bucket))
}

/// A group's runner per key (`SUBTREE#<runner>`), as tables written before subtree counts
/// hold them: read by nothing, and deleted by `rebuild-lists`.
pub const SUBTREE_PREFIX: &str = "SUBTREE#";

pub fn subtree_runner(group_id: i64, runner_id: i64) -> (String, String) {
    (
        format!("GROUP#{group_id}"),
        format!("{SUBTREE_PREFIX}{}", padded(runner_id)),
    )
}

/// A group's subtree set: the runners below the group (linked to it, to a group below it or to
/// a project below it), one count item per id bucket and slot with their ids (`value`,
/// `value_ids`), in the group's own partition, so that owned lists read a group of 2,000
/// projects in one query, at about 9 bytes a runner.
pub const SUBTREE_COUNT_PREFIX: &str = "SUBTREE_COUNT#";

pub fn subtree_count(group_id: i64, runner_id: i64) -> (String, String) {
    (
        format!("GROUP#{group_id}"),
        format!("{SUBTREE_COUNT_PREFIX}{}", bucket_and_slot(runner_id)),
    )
}

/// The runner id in a key that ends with a padded id (`PROJECT#p/RUNNER#…`, `SUBTREE#…`).
pub fn trailing_id(sk: &str) -> Option<i64> {
    sk.rsplit('#').next()?.parse().ok()
}

pub fn token(digest: &str) -> (String, String) {
    (format!("TOKEN#{digest}"), "TOKEN".to_owned())
}

pub fn user(id: i64) -> (String, String) {
    (format!("USER#{id}"), "USER".to_owned())
}

/// A user's personal access token, listed under the user so that blocking or promoting the
/// user can update the copies of those flags on each token item.
pub fn user_token(user_id: i64, digest: &str) -> (String, String) {
    (format!("USER#{user_id}"), format!("TOKEN#{digest}"))
}

pub fn username(name: &str) -> (String, String) {
    (
        format!("USERNAME#{}", name.to_lowercase()),
        "USERNAME".to_owned(),
    )
}

pub fn group(id: i64) -> (String, String) {
    (format!("GROUP#{id}"), "GROUP".to_owned())
}

pub fn project(id: i64) -> (String, String) {
    (format!("PROJECT#{id}"), "PROJECT".to_owned())
}

/// The longest full path a group or project may have, in bytes once lowercased. DynamoDB
/// refuses a partition key over 2,048 bytes; GitLab's own paths stay far below this (255
/// characters a segment). A lookup by a longer path is a miss without a request, never a request
/// that DynamoDB rejects.
pub const MAX_FULL_PATH_BYTES: usize = 1024;

/// Whether `full_path` can name a group or project (see [`MAX_FULL_PATH_BYTES`]).
pub fn path_fits(full_path: &str) -> bool {
    full_path.len() <= MAX_FULL_PATH_BYTES && full_path.to_lowercase().len() <= MAX_FULL_PATH_BYTES
}

/// A full path (`group/sub/project`), case-insensitive as in GitLab.
pub fn path(full_path: &str) -> (String, String) {
    (
        format!("PATH#{}", full_path.to_lowercase()),
        "PATH".to_owned(),
    )
}

/// The sort key prefix of the runner links in a project's or group's partition.
pub const RUNNER_LINK_PREFIX: &str = "RUNNER#";

pub fn project_runner_link(project_id: i64, runner_id: i64) -> (String, String) {
    (
        format!("PROJECT#{project_id}"),
        format!("{RUNNER_LINK_PREFIX}{}", padded(runner_id)),
    )
}

pub fn group_runner_link(group_id: i64, runner_id: i64) -> (String, String) {
    (
        format!("GROUP#{group_id}"),
        format!("{RUNNER_LINK_PREFIX}{}", padded(runner_id)),
    )
}

pub fn group_member(group_id: i64, user_id: i64) -> (String, String) {
    (
        format!("GROUP#{group_id}"),
        format!("MEMBER#{}", padded(user_id)),
    )
}

pub fn project_member(project_id: i64, user_id: i64) -> (String, String) {
    (
        format!("PROJECT#{project_id}"),
        format!("MEMBER#{}", padded(user_id)),
    )
}

pub fn job(id: i64) -> (String, String) {
    (format!("JOB#{id}"), "JOB".to_owned())
}

/// gsi1 partition of a project's jobs (by id).
pub fn project_jobs(project_id: i64) -> String {
    format!("PROJECT_JOBS#{project_id}")
}

/// gsi2 partition of the jobs a runner took (by id).
pub fn runner_jobs(runner_id: i64) -> String {
    format!("RUNNER_JOBS#{runner_id}")
}

/// How many consecutive job ids share a bucket of a runner's job counts.
pub const JOB_BUCKET_SIZE: i64 = 1_000;

/// gsi3 partition of the ids of the jobs of one status a runner took (keys only), so that a
/// page deep in a runner's 100,000 jobs, of any status or of one, reads one bucket's keys
/// rather than the jobs before it. A job's key moves with its status.
pub fn runner_job_ids(runner_id: i64, status: &str) -> String {
    format!("RUNNER_JOB_IDS#{runner_id}#{status}")
}

/// The attribute of a runner job count item that counts the bucket's jobs of one status
/// (`value` counts them all).
pub fn job_status_count(status: &str) -> String {
    format!("{JOB_STATUS_COUNT_PREFIX}{status}")
}

pub const JOB_STATUS_COUNT_PREFIX: &str = "status_";

/// The partition of a runner's job counts, one item per job id bucket it took jobs from.
pub fn runner_job_counts(runner_id: i64) -> String {
    format!("RUNNER_JOB_COUNTS#{runner_id}")
}

/// The count of the runner's jobs in this job's id bucket.
pub fn runner_job_count(runner_id: i64, job_id: i64) -> (String, String) {
    (
        runner_job_counts(runner_id),
        padded(job_id.div_euclid(JOB_BUCKET_SIZE)),
    )
}

/// The pending-job queues, oldest job first: a project's (its project runners), a group's
/// (its group runners; a job waits in the queue of every group above its project) and the
/// instance's (instance runners).
pub fn project_queue(project_id: i64) -> String {
    format!("QUEUE#project#{project_id}")
}

pub fn group_queue(group_id: i64) -> String {
    format!("QUEUE#group#{group_id}")
}

pub const INSTANCE_QUEUE: &str = "QUEUE#instance";

/// How many of a project's jobs run on instance runners now: the fair-usage order in which
/// instance runners take jobs.
pub fn instance_running(project_id: i64) -> (String, String) {
    (
        format!("PROJECT#{project_id}"),
        "INSTANCE_RUNNING".to_owned(),
    )
}

/// A pending or running job's entry in the one partition the stuck-job sweeper reads.
pub const ACTIVE_JOBS: &str = "ACTIVE";

pub fn active_job(job_id: i64) -> (String, String) {
    (ACTIVE_JOBS.to_owned(), padded(job_id))
}

/// A job's entry in one queue.
pub fn queue_entry(queue: &str, job_id: i64) -> (String, String) {
    (queue.to_owned(), padded(job_id))
}

/// One chunk of a job's log: by generation (a PUT that replaces the log starts a new one),
/// then by byte offset.
pub fn log_chunk(job_id: i64, generation: i64, offset: i64) -> (String, String) {
    (
        format!("JOB#{job_id}"),
        format!("LOG#{generation:06}#{}", padded(offset)),
    )
}

pub fn log_prefix(generation: i64) -> String {
    format!("LOG#{generation:06}#")
}

pub fn settings() -> (String, String) {
    ("SETTINGS".to_owned(), "SETTINGS".to_owned())
}

pub fn counter(name: &str) -> (String, String) {
    (format!("COUNTER#{name}"), "COUNTER".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_ids_sort_numerically() {
        let mut keys = vec![padded(10), padded(9), padded(100)];
        keys.sort();
        assert_eq!(keys, [padded(9), padded(10), padded(100)]);
        assert_eq!(padded(i64::MAX).len(), 20);
    }

    #[test]
    fn long_paths_do_not_fit() {
        assert!(path_fits(&"a".repeat(MAX_FULL_PATH_BYTES)));
        assert!(!path_fits(&"a".repeat(MAX_FULL_PATH_BYTES + 1)));
        // 'İ' is two bytes and lowercases to three.
        assert!(!path_fits(&"\u{130}".repeat(MAX_FULL_PATH_BYTES / 2)));
    }

    #[test]
    fn runner_counts_name_type_bucket_and_slot() {
        assert_eq!(runner_bucket(999), 0);
        assert_eq!(runner_bucket(1_000), 1);
        let (pk, sk) = runner_count("group_type", 12_345);
        assert_eq!(pk, RUNNER_COUNTS);
        assert_eq!(sk, format!("group_type#{}#1", padded(12)));
        assert_eq!(parse_runner_count(&sk), Some(("group_type", 12)));
        assert_eq!(parse_runner_count("nonsense"), None);
        let (pk, sk) = runner_facet_count(&format!("tag:{}", "\u{1F600}".repeat(255)), 12_345);
        assert_eq!(pk, RUNNER_FACET_COUNTS);
        assert_eq!(sk.len(), 32 + 1 + 20 + 2, "a long tag keeps the key short");
        assert_eq!(parse_runner_facet_count(&sk), Some(12));
        assert!(sk.ends_with("#1"));
        assert_ne!(
            runner_facet_counts_prefix("tag:a"),
            runner_facet_counts_prefix("tag:a#")
        );
        assert_eq!(trailing_id(&subtree_runner(4, 77).1), Some(77));
        assert_eq!(trailing_id(&project_runner_link(4, 78).1), Some(78));
    }

    #[test]
    fn contact_keys_read_back() {
        let (pk, sk) = runner_contact("project_type", 12_345);
        assert_eq!(parse_runner_contact(&pk), Some(("project_type", 12)));
        assert_eq!(sk, padded(12_345));
        let at = 7 * CONTACT_SPAN_MS + 5;
        let (_, sk) = runner_contact_count(at, 12_345);
        assert_eq!(parse_runner_contact_count(&sk), Some((7, 12)));
        assert!(sk.starts_with(&contact_span_prefix(7)));
        assert_eq!(contact_span(7 * CONTACT_SPAN_MS - 1), 6);
        let (pk, sk) = runner_seen_count(3 * SEEN_SPAN_MS - 1, 12_345);
        assert_eq!(pk, RUNNER_SEEN_COUNTS);
        assert_eq!(parse_runner_contact_count(&sk), Some((2, 12)));
        assert_eq!(
            parse_runner_facet(&runner_facet("never_contacted", "group_type", 12_345).0),
            Some(("group_type", 12))
        );
        let (shard, by_time) = new_runners_by_time(12_345, at);
        assert_eq!(shard, "NEW_RUNNERS_AT#1");
        assert!(by_time < new_runners_by_time(1, at + 1).1);
        let (shard, by_time) = runner_contacts_by_time(12_345, at);
        assert_eq!(shard, "RUNNER_CONTACTS_AT#1");
        assert!(
            by_time < runner_contacts_by_time(1, at + 1).1,
            "ordered by time first"
        );
    }

    #[test]
    fn paths_are_case_insensitive() {
        assert_eq!(path("Group/Project"), path("group/project"));
        assert_eq!(username("Root"), username("root"));
    }
}
