//! Operator-side code, compiled only with the `admin` feature (runnerctl, tests): creating the
//! table from `template.yaml`, running DynamoDB Local, importing fixtures, and the day-to-day
//! commands for users, groups, projects and registration tokens.

pub mod dynamodb_local;
pub mod fixtures;
pub mod listing;
pub mod operator;
pub mod schema;
mod writes;

use crate::config::StorageTimeouts;
use crate::store::client::{ca_bundle_from_env, https_client};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::{Credentials, Region};

/// A DynamoDB client for an operator: the AWS default chain for a deployed table, or an
/// explicit endpoint (DynamoDB Local) with dummy credentials when none are configured. Calls
/// are bounded by the environment's [`StorageTimeouts`], as the functions' are.
pub async fn client_for(endpoint: Option<&str>, region: Option<&str>) -> Client {
    client_with_timeouts(endpoint, region, StorageTimeouts::from_env()).await
}

/// [`client_for`] with explicit timeouts (tests of a stalled database).
pub async fn client_with_timeouts(
    endpoint: Option<&str>,
    region: Option<&str>,
    timeouts: StorageTimeouts,
) -> Client {
    let extra_cas = ca_bundle_from_env().unwrap_or_else(|e| {
        tracing::error!("{e}; trusting Amazon's root CAs only");
        None
    });
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(https_client(extra_cas.as_deref()))
        .timeout_config(crate::store::sdk_timeouts(timeouts));
    if let Some(endpoint) = endpoint {
        loader = loader
            .endpoint_url(endpoint)
            .region(Region::new(region.unwrap_or("us-east-1").to_owned()));
        let has_credentials = std::env::var_os("AWS_ACCESS_KEY_ID").is_some()
            || std::env::var_os("AWS_PROFILE").is_some();
        if !has_credentials {
            loader = loader.credentials_provider(Credentials::new(
                "local",
                "local",
                None,
                None,
                "runnerctl",
            ));
        }
    } else if let Some(region) = region {
        loader = loader.region(Region::new(region.to_owned()));
    }
    Client::new(&loader.load().await)
}
