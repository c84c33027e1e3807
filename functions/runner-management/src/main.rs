//! Lambda entry point for the runner management endpoints.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    runners_shared::http::run_lambda(runner_management::router).await
}
