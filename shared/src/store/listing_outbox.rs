//! Runner counts that do not fit in the transaction of the write that moves them.
//!
//! A runner write (registration, `PUT /runners/:id`, enable, disable, delete) changes one
//! runner count and one facet count per facet that moves: with 50 tags, a full retag moves
//! 100. DynamoDB takes at most 100 actions in a transaction, and counts must change exactly
//! once (an `ADD` is not idempotent), so the counts that do not fit are written into the same
//! transaction as one **outbox item** (`LISTING_OUTBOX` / `<millis>#<random>`). Right after the
//! commit it is applied by a transaction of its count changes and its own delete, on condition
//! that it still exists; one holding more than 99 changes is applied 98 at a time, each
//! transaction also putting an outbox item of the rest. If that follow-up does not happen (the
//! function stopped, DynamoDB failed), the sweeper applies what is left a minute later; the
//! condition makes sure that only one of them does.

use super::item::{Item, ItemBuilder, ItemReader, ids_of_set, key_of, number_set};
use super::listing::{CountChange, CountDelta, ListingChanges};
use super::runners::{MAX_TRANSACTION_ACTIONS, Transaction};
use super::{Store, build_error, keys};
use crate::error::ApiError;
use crate::time::Timestamp;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, TransactWriteItem, Update};
use std::collections::{BTreeMap, BTreeSet};

/// The count changes one transaction applies from an outbox item: its delete takes one action
/// and the outbox item of what is left, if anything is, another.
const APPLIED_AT_ONCE: usize = MAX_TRANSACTION_ACTIONS - 2;

/// An outbox item this old was not applied by the write that made it (which applies it within
/// milliseconds): the sweeper applies it.
pub const OUTBOX_ABANDONED_AFTER_MS: i64 = 60_000;

/// How many of a write's `counts` count changes go into its transaction beside `room` free
/// actions, and whether the rest goes into an outbox item (which takes one of them). `None`
/// when there is no room at all.
fn plan(room: usize, counts: usize) -> Option<(usize, bool)> {
    if counts <= room {
        Some((counts, false))
    } else {
        room.checked_sub(1).map(|inline| (inline, true))
    }
}

/// A new outbox item's key: when it was written, and a random part.
fn outbox_key() -> Result<(String, String), ApiError> {
    let random = getrandom::u64().map_err(|e| ApiError::internal(format!("no randomness: {e}")))?;
    Ok((
        keys::LISTING_OUTBOX.to_owned(),
        format!("{}#{random:016x}", keys::padded(Timestamp::now().millis())),
    ))
}

/// An outbox item holding `changes`.
fn outbox_item(key: (String, String), changes: &[CountChange]) -> Item {
    let mut item = ItemBuilder::keyed(key).build();
    item.insert("counts".to_owned(), encode(changes));
    item
}

fn encode(changes: &[CountChange]) -> AttributeValue {
    AttributeValue::L(
        changes
            .iter()
            .map(|((pk, sk), deltas)| {
                let adds = deltas
                    .iter()
                    .map(|(attribute, change)| {
                        (
                            attribute.clone(),
                            AttributeValue::N(change.delta.to_string()),
                        )
                    })
                    .collect();
                let sets = |side: fn(&CountDelta) -> &BTreeSet<i64>| {
                    AttributeValue::M(
                        deltas
                            .iter()
                            .filter(|(_, change)| !side(change).is_empty())
                            .map(|(attribute, change)| {
                                (attribute.clone(), number_set(side(change)))
                            })
                            .collect(),
                    )
                };
                AttributeValue::M(
                    [
                        (keys::PK.to_owned(), AttributeValue::S(pk.clone())),
                        (keys::SK.to_owned(), AttributeValue::S(sk.clone())),
                        ("add".to_owned(), AttributeValue::M(adds)),
                        ("join".to_owned(), sets(|change| &change.joining)),
                        ("leave".to_owned(), sets(|change| &change.leaving)),
                    ]
                    .into(),
                )
            })
            .collect(),
    )
}

fn decode(item: &Item) -> Result<Vec<CountChange>, ApiError> {
    let unreadable = || ApiError::internal("unreadable listing outbox item");
    let changes = item
        .get("counts")
        .and_then(|c| c.as_l().ok())
        .ok_or_else(unreadable)?;
    changes
        .iter()
        .map(|change| {
            let change = change.as_m().map_err(|_| unreadable())?;
            let reader = ItemReader::new(change, "listing outbox change");
            let adds = change
                .get("add")
                .and_then(|a| a.as_m().ok())
                .ok_or_else(unreadable)?;
            // An outbox item written before member sets has no `join` or `leave`.
            let side = |name: &str, attribute: &str| match change
                .get(name)
                .and_then(|sets| sets.as_m().ok())
                .and_then(|sets| sets.get(attribute))
            {
                Some(set) => ids_of_set(set),
                None => Ok(BTreeSet::new()),
            };
            let deltas = adds
                .keys()
                .map(|attribute| {
                    let delta = ItemReader::new(adds, "listing outbox change").n(attribute)?;
                    let change = CountDelta {
                        delta,
                        joining: side("join", attribute)?,
                        leaving: side("leave", attribute)?,
                    };
                    Ok((attribute.clone(), change))
                })
                .collect::<Result<_, ApiError>>()?;
            Ok(((reader.s(keys::PK)?, reader.s(keys::SK)?), deltas))
        })
        .collect()
}

impl Store {
    /// The action that adds `deltas` to the counts of the count item `key`, and adds and
    /// removes their runners in the counts' member sets.
    fn count_update(
        &self,
        key: &(String, String),
        deltas: &BTreeMap<String, CountDelta>,
    ) -> Result<TransactWriteItem, ApiError> {
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key_of(key.clone())));
        let (mut adds, mut deletes) = (Vec::new(), Vec::new());
        for (i, (attribute, change)) in deltas.iter().enumerate() {
            adds.push(format!("#a{i} :d{i}"));
            update = update
                .expression_attribute_names(format!("#a{i}"), attribute)
                .expression_attribute_values(
                    format!(":d{i}"),
                    AttributeValue::N(change.delta.to_string()),
                );
            // A set takes no empty value: only the side that changes is written.
            for (ids, clause, value) in [
                (&change.joining, &mut adds, format!(":j{i}")),
                (&change.leaving, &mut deletes, format!(":l{i}")),
            ] {
                if !ids.is_empty() {
                    clause.push(format!("#m{i} {value}"));
                    update = update.expression_attribute_values(value, number_set(ids));
                }
            }
            if !(change.joining.is_empty() && change.leaving.is_empty()) {
                update = update
                    .expression_attribute_names(format!("#m{i}"), keys::members_of(attribute));
            }
        }
        let mut expression = format!("ADD {}", adds.join(", "));
        if !deletes.is_empty() {
            expression.push_str(&format!(" DELETE {}", deletes.join(", ")));
        }
        let update = update
            .update_expression(expression)
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// Count changes as transaction actions (they fit: see [`Store::transact_listing`]).
    pub(crate) fn count_updates(
        &self,
        counts: &[CountChange],
    ) -> Result<Vec<TransactWriteItem>, ApiError> {
        counts
            .iter()
            .map(|(key, deltas)| self.count_update(key, deltas))
            .collect()
    }

    /// Runs `actions` (the write itself, whose conditions decide it) in one transaction with
    /// the listing `changes` it makes: the contact entry's writes; every count change, in the
    /// transaction or in an outbox item written by it (applied right after); then the index
    /// entries and `spill` (writes a list can do without for a moment), in the transaction as
    /// far as they fit, or right after it ([`Store::transact_spilling`]).
    pub(crate) async fn transact_listing(
        &self,
        mut actions: Vec<TransactWriteItem>,
        changes: &ListingChanges,
        spill: Vec<TransactWriteItem>,
    ) -> Result<Transaction, ApiError> {
        actions.extend(self.contact_actions(changes)?);
        let room = MAX_TRANSACTION_ACTIONS.saturating_sub(actions.len());
        let (inline, outbox) = plan(room, changes.counts.len()).ok_or_else(|| {
            ApiError::internal(format!(
                "{} actions leave no room for {} count changes",
                actions.len(),
                changes.counts.len()
            ))
        })?;
        let (in_transaction, outboxed) = changes.counts.split_at(inline);
        actions.extend(self.count_updates(in_transaction)?);
        let pending = if outbox {
            let key = outbox_key()?;
            actions.push(self.put(
                outbox_item(key.clone(), outboxed),
                "attribute_not_exists(pk)",
            )?);
            Some((key, outboxed))
        } else {
            None
        };
        let mut entries = self.entry_actions(changes)?;
        entries.extend(spill);
        let outcome = self.transact_spilling(actions, entries).await?;
        if let (Transaction::Committed, Some((key, outboxed))) = (&outcome, pending) {
            // The write is done; the sweeper applies what this could not.
            if let Err(error) = self.apply_outbox(key, outboxed).await {
                tracing::warn!(%error, "listing outbox left for the sweeper");
            }
        }
        Ok(outcome)
    }

    /// Applies one outbox item's count changes and deletes it, unless it is gone (applied
    /// already), 98 changes a transaction, each putting an outbox item of the rest. Returns
    /// whether this applied it (all of it, or its first part and the rest, or nothing).
    async fn apply_outbox(
        &self,
        mut key: (String, String),
        mut changes: &[CountChange],
    ) -> Result<bool, ApiError> {
        loop {
            let (applied, rest) = changes.split_at(changes.len().min(APPLIED_AT_ONCE));
            let delete = Delete::builder()
                .table_name(&self.table)
                .set_key(Some(key_of(key)))
                .condition_expression("attribute_exists(pk)")
                .build()
                .map_err(build_error)?;
            let mut actions = vec![TransactWriteItem::builder().delete(delete).build()];
            let next = if rest.is_empty() {
                None
            } else {
                let next = outbox_key()?;
                actions
                    .push(self.put(outbox_item(next.clone(), rest), "attribute_not_exists(pk)")?);
                Some(next)
            };
            actions.extend(self.count_updates(applied)?);
            if !matches!(self.transact(actions).await?, Transaction::Committed) {
                return Ok(false);
            }
            match next {
                Some(next) => (key, changes) = (next, rest),
                None => return Ok(true),
            }
        }
    }

    /// Applies every outbox item older than [`OUTBOX_ABANDONED_AFTER_MS`] at `now` (the
    /// sweeper's part). Returns how many this applied.
    pub async fn apply_abandoned_outboxes(&self, now: Timestamp) -> Result<usize, ApiError> {
        let before = now.millis().saturating_sub(OUTBOX_ABANDONED_AFTER_MS);
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND sk < :before")
            .expression_attribute_values(":pk", AttributeValue::S(keys::LISTING_OUTBOX.to_owned()))
            .expression_attribute_values(":before", AttributeValue::S(keys::padded(before)))
            .consistent_read(true);
        let mut abandoned = Vec::new();
        self.query_pages(query, |item| {
            let reader = ItemReader::new(item, "listing outbox");
            abandoned.push(((reader.s(keys::PK)?, reader.s(keys::SK)?), decode(item)?));
            Ok(false)
        })
        .await?;
        let mut applied = 0;
        for (key, changes) in abandoned {
            if self.apply_outbox(key, &changes).await? {
                tracing::info!(
                    count_items = changes.len(),
                    "abandoned listing outbox applied"
                );
                applied += 1;
            }
        }
        Ok(applied)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_that_fit_stay_in_the_transaction() {
        assert_eq!(plan(99, 53), Some((53, false)));
        assert_eq!(plan(3, 3), Some((3, false)));
        assert_eq!(plan(0, 0), Some((0, false)));
    }

    #[test]
    fn counts_that_do_not_fit_go_to_one_outbox_item() {
        // A full retag of 50 tags to 50 others, pausing too: 201 facet counts beside the update.
        assert_eq!(plan(99, 201), Some((98, true)));
        // A delete with 97 links leaves one action: everything goes to the outbox item.
        assert_eq!(plan(1, 103), Some((0, true)));
        assert_eq!(plan(0, 1), None);
    }

    #[test]
    fn outbox_changes_read_back_as_written() {
        let change = |delta: i64| {
            let mut change = CountDelta {
                delta,
                ..CountDelta::default()
            };
            match delta > 0 {
                true => change.joining.insert(7),
                false => change.leaving.insert(7),
            };
            change
        };
        let changes: Vec<CountChange> = vec![
            (
                keys::runner_count("project_type", 7),
                BTreeMap::from([("value".to_owned(), change(-1))]),
            ),
            (
                keys::runner_facet_count("tag:dö#cker", 7),
                BTreeMap::from([
                    ("instance_type".to_owned(), change(-1)),
                    ("project_type".to_owned(), change(1)),
                ]),
            ),
        ];
        let mut item = outbox_item((keys::LISTING_OUTBOX.to_owned(), "1".to_owned()), &changes);
        assert_eq!(decode(&item).unwrap(), changes);
        // One written before member sets moves the counts only.
        let Some(AttributeValue::L(written)) = item.get_mut("counts") else {
            panic!("no counts");
        };
        for change in written.iter_mut() {
            if let AttributeValue::M(change) = change {
                change.remove("join");
                change.remove("leave");
            }
        }
        let counts_only: Vec<(String, i64)> = decode(&item)
            .unwrap()
            .into_iter()
            .flat_map(|(_, deltas)| deltas)
            .map(|(attribute, change)| {
                assert!(change.joining.is_empty() && change.leaving.is_empty());
                (attribute, change.delta)
            })
            .collect();
        assert_eq!(counts_only.len(), 3);
        item.insert("counts".to_owned(), AttributeValue::S("x".into()));
        assert_eq!(decode(&item).unwrap_err().status().as_u16(), 500);
    }
}
