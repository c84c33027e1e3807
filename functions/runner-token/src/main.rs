//! Lambda entry point for the runner-token endpoints.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    runners_shared::http::run_lambda(runner_token::router).await
}
