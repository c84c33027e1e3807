//! Lambda entry point for the runner job protocol.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    runners_shared::http::run_lambda(runner_jobs::router).await
}
