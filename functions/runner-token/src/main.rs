//! Lambda entry point. Clients are built once here, before the runtime asks for work; nothing
//! here touches the network.

use runners_shared::{AppState, Settings, Store};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    runners_shared::http::init_lambda_logging();
    let settings = Settings::from_env();
    let store = Store::from_env(settings.table_name.clone()).await;
    let app = runner_token::router(AppState::new(store, settings));
    lambda_http::run(runners_shared::http::entry_point(app)).await
}
