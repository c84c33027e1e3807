//! Instance settings (`SETTINGS` item): the legacy registration switch and runner token expiry
//! (the instance interval and the group and project overrides, kept here so that making a token
//! reads one item). The item also holds the instance registration token's digest (written by
//! runnerctl and fixtures).

use super::item::{Item, ItemReader, key_of};
use super::{Store, keys, storage_error};
use crate::error::ApiError;
use crate::metrics;
use crate::token_expiry::TokenExpiry;
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::BTreeMap;

/// `allow_runner_registration_token`: whether `POST /runners` takes registration tokens. On by
/// default here (GitLab 17 turned it off on self-managed; this service's 12.x workflow needs it).
pub const ALLOW_REGISTRATION_TOKEN: &str = "allow_runner_registration_token";
/// `runner_token_expiration_interval`, in seconds; absent: tokens do not expire.
pub const TOKEN_EXPIRATION_INTERVAL: &str = "runner_token_expiration_interval";
/// Where the instance registration token's digest is kept (`Store::replace_registration_token`).
pub(crate) const REGISTRATION_DIGEST: &str = "registration_token_digest";
const GROUP_INTERVALS: &str = "group_runner_token_expiration_intervals";
const PROJECT_INTERVALS: &str = "project_runner_token_expiration_intervals";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceSettings {
    pub allow_runner_registration_token: bool,
    pub token_expiry: TokenExpiry,
    /// The instance registration token's digest, when one is set.
    pub registration_token_digest: Option<String>,
}

impl Default for InstanceSettings {
    fn default() -> Self {
        Self {
            allow_runner_registration_token: true,
            token_expiry: TokenExpiry::default(),
            registration_token_digest: None,
        }
    }
}

/// Whose expiry interval a setting is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpiryScope {
    Instance,
    Group(i64),
    Project(i64),
}

fn intervals_from(map: Option<&Item>) -> Result<BTreeMap<i64, i64>, ApiError> {
    map.into_iter()
        .flatten()
        .map(|(id, value)| {
            let id = id.parse::<i64>().ok();
            let seconds = value.as_n().ok().and_then(|n| n.parse::<i64>().ok());
            id.zip(seconds).ok_or_else(|| {
                ApiError::internal("a token expiry override is not an id and a number")
            })
        })
        .collect()
}

#[cfg(feature = "admin")]
fn intervals_item(intervals: &BTreeMap<i64, i64>) -> Item {
    intervals
        .iter()
        .map(|(id, seconds)| (id.to_string(), AttributeValue::N(seconds.to_string())))
        .collect()
}

impl InstanceSettings {
    fn from_item(item: &Item) -> Result<Self, ApiError> {
        let r = ItemReader::new(item, "settings");
        let defaults = Self::default();
        Ok(Self {
            allow_runner_registration_token: r.bool_or(
                ALLOW_REGISTRATION_TOKEN,
                defaults.allow_runner_registration_token,
            ),
            token_expiry: TokenExpiry {
                instance: r.opt_n(TOKEN_EXPIRATION_INTERVAL)?,
                groups: intervals_from(r.map(GROUP_INTERVALS)?)?,
                projects: intervals_from(r.map(PROJECT_INTERVALS)?)?,
            },
            registration_token_digest: r.opt_s(REGISTRATION_DIGEST),
        })
    }
}

/// The expiry attributes of a settings item written whole (fixtures).
#[cfg(feature = "admin")]
pub(crate) fn token_expiry_attributes(expiry: &TokenExpiry) -> Vec<(String, AttributeValue)> {
    let mut attributes = vec![
        (
            GROUP_INTERVALS.to_owned(),
            AttributeValue::M(intervals_item(&expiry.groups)),
        ),
        (
            PROJECT_INTERVALS.to_owned(),
            AttributeValue::M(intervals_item(&expiry.projects)),
        ),
    ];
    if let Some(seconds) = expiry.instance {
        attributes.push((
            TOKEN_EXPIRATION_INTERVAL.to_owned(),
            AttributeValue::N(seconds.to_string()),
        ));
    }
    attributes
}

impl Store {
    /// The instance settings; the defaults when none were ever set.
    pub async fn instance_settings(&self) -> Result<InstanceSettings, ApiError> {
        match self.get(keys::settings()).await? {
            Some(item) => InstanceSettings::from_item(&item),
            None => Ok(InstanceSettings::default()),
        }
    }

    async fn update_settings(
        &self,
        expression: &str,
        names: &[(&str, &str)],
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<(), ApiError> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_of(keys::settings())))
            .update_expression(expression)
            .expression_attribute_values(":entity", AttributeValue::S("settings".into()));
        for (placeholder, name) in names {
            update = update.expression_attribute_names(*placeholder, *name);
        }
        for (placeholder, value) in values {
            update = update.expression_attribute_values(placeholder, value);
        }
        metrics::track(update.send()).await.map_err(storage_error)?;
        Ok(())
    }

    /// Turns the legacy registration switch on or off (the item is created if missing).
    pub async fn set_allow_registration_token(&self, allow: bool) -> Result<(), ApiError> {
        self.update_settings(
            "SET #allow = :allow, entity = :entity",
            &[("#allow", ALLOW_REGISTRATION_TOKEN)],
            vec![(":allow", AttributeValue::Bool(allow))],
        )
        .await
    }

    /// Sets (or with `None` clears) the token expiry interval of the instance, a group or a
    /// project. Tokens already made keep their expiry.
    pub async fn set_token_expiration_interval(
        &self,
        scope: ExpiryScope,
        seconds: Option<i64>,
    ) -> Result<(), ApiError> {
        let (map, id) = match scope {
            ExpiryScope::Instance => {
                return match seconds {
                    Some(seconds) => {
                        self.update_settings(
                            "SET #interval = :seconds, entity = :entity",
                            &[("#interval", TOKEN_EXPIRATION_INTERVAL)],
                            vec![(":seconds", AttributeValue::N(seconds.to_string()))],
                        )
                        .await
                    }
                    None => {
                        self.update_settings(
                            "SET entity = :entity REMOVE #interval",
                            &[("#interval", TOKEN_EXPIRATION_INTERVAL)],
                            vec![],
                        )
                        .await
                    }
                };
            }
            ExpiryScope::Group(id) => (GROUP_INTERVALS, id),
            ExpiryScope::Project(id) => (PROJECT_INTERVALS, id),
        };
        // A nested path needs its map to exist: make sure of it first.
        self.update_settings(
            "SET #map = if_not_exists(#map, :empty), entity = :entity",
            &[("#map", map)],
            vec![(":empty", AttributeValue::M(Item::new()))],
        )
        .await?;
        let id = id.to_string();
        match seconds {
            Some(seconds) => {
                self.update_settings(
                    "SET #map.#id = :seconds, entity = :entity",
                    &[("#map", map), ("#id", &id)],
                    vec![(":seconds", AttributeValue::N(seconds.to_string()))],
                )
                .await
            }
            None => {
                self.update_settings(
                    "SET entity = :entity REMOVE #map.#id",
                    &[("#map", map), ("#id", &id)],
                    vec![],
                )
                .await
            }
        }
    }
}
