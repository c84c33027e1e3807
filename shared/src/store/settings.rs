//! Instance settings (`SETTINGS` item): today the legacy registration switch. The item also holds
//! the instance registration token's digest (written by runnerctl and fixtures).

use super::item::{ItemReader, key_of};
use super::{Store, keys, storage_error};
use crate::error::ApiError;
use crate::metrics;
use aws_sdk_dynamodb::types::AttributeValue;

/// `allow_runner_registration_token`: whether `POST /runners` takes registration tokens. On by
/// default here (GitLab 17 turned it off on self-managed; this service's 12.x workflow needs it).
pub const ALLOW_REGISTRATION_TOKEN: &str = "allow_runner_registration_token";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceSettings {
    pub allow_runner_registration_token: bool,
}

impl Default for InstanceSettings {
    fn default() -> Self {
        Self {
            allow_runner_registration_token: true,
        }
    }
}

impl Store {
    /// The instance settings; the defaults when none were ever set.
    pub async fn instance_settings(&self) -> Result<InstanceSettings, ApiError> {
        let defaults = InstanceSettings::default();
        Ok(match self.get(keys::settings()).await? {
            Some(item) => InstanceSettings {
                allow_runner_registration_token: ItemReader::new(&item, "settings").bool_or(
                    ALLOW_REGISTRATION_TOKEN,
                    defaults.allow_runner_registration_token,
                ),
            },
            None => defaults,
        })
    }

    /// Turns the legacy registration switch on or off (the item is created if missing).
    pub async fn set_allow_registration_token(&self, allow: bool) -> Result<(), ApiError> {
        metrics::track(
            self.client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key_of(keys::settings())))
                .update_expression("SET #allow = :allow, entity = :entity")
                .expression_attribute_names("#allow", ALLOW_REGISTRATION_TOKEN)
                .expression_attribute_values(":allow", AttributeValue::Bool(allow))
                .expression_attribute_values(":entity", AttributeValue::S("settings".into()))
                .send(),
        )
        .await
        .map_err(storage_error)?;
        Ok(())
    }
}
