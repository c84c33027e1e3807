#!/usr/bin/env bash
# Regenerates the Lambda figures in docs/lambda-figures.md: builds the release binaries (arm64
# when its target is installed, and x86_64), starts DynamoDB Local with the e2e fixture, and runs
# lambda_figures.py. Takes a few minutes (release builds). Prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/../.."
source infra/dynamodb-local.sh
[ -x .venv/bin/python ] || { echo "run infra/test.sh once first (it installs .venv)" >&2; exit 1; }
export PATH="$PWD/.venv/bin:$PATH"
start_dynamodb_local
cargo build --locked --quiet -p runnerctl
export TABLE_NAME="bench-$$"
target/debug/runnerctl table create >/dev/null
target/debug/runnerctl seed tests/e2e/fixtures/management.json >/dev/null
.venv/bin/python infra/bench/lambda_figures.py
