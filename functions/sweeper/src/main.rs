//! Lambda entry point for the stuck-job sweeper: an EventBridge schedule invokes it (the event's
//! content does not matter); it answers with what it did, which the log also records.

use lambda_http::lambda_runtime::{self, LambdaEvent};
use runners_shared::time::Timestamp;
use runners_shared::{Settings, Store, sweeper};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    runners_shared::http::init_lambda_logging();
    let settings = Settings::from_env();
    let store = Store::for_lambda(settings.table_name.clone(), settings.storage_timeouts)?;
    let store = &store;
    lambda_runtime::run(lambda_http::service_fn(
        move |_: LambdaEvent<serde_json::Value>| async move {
            let report = sweeper::sweep(store, Timestamp::now()).await?;
            tracing::info!(?report, "sweep");
            Ok::<_, lambda_http::Error>(serde_json::to_value(report)?)
        },
    ))
    .await
}
