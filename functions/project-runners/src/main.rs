//! Lambda entry point for the project runner endpoints.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    runners_shared::http::run_lambda(project_runners::router).await
}
