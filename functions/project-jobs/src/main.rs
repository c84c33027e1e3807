//! Lambda entry point for the users' project Jobs API.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    runners_shared::http::run_lambda(project_jobs::router).await
}
