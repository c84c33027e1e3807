#!/usr/bin/env bash
# Regenerates the figures (after one infra/test.sh, which installs the tools):
#   infra/bench/run.sh lambda       sizes, cold init and memory of the Lambda binaries
#                                   (docs/lambda-figures.md; release builds, a few minutes)
#   infra/bench/run.sh round-trips  DynamoDB round trips per endpoint (docs/data-model.md)
#   infra/bench/run.sh polling      what an idle jobs/request poll costs, and the monthly AWS cost
#                                   of 100 and 1,000 runners polling (docs/polling-cost.md)
#   infra/bench/run.sh hostile      time to answer hostile requests and a stalled DynamoDB
#                                   (docs/hostile-input.md; RUNNERCTL=<older build> to compare)
#   infra/bench/run.sh lists        every runner list at 100,000 runners: calls, round trips,
#                                   items and bytes read, latency (docs/lists-at-scale.md; seeds
#                                   its own table, ~10 minutes)
# Each starts DynamoDB Local with tests/e2e/fixtures/management.json (lists: its own seed) and
# prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/../.."
case "${1:-}" in
  lambda) script=infra/bench/lambda_figures.py ;;
  round-trips) script=infra/bench/round_trips.py ;;
  hostile) script=infra/bench/hostile.py ;;
  polling) script=infra/bench/polling.py ;;
  lists) script=infra/bench/lists_at_scale.py ;;
  *) echo "usage: infra/bench/run.sh lambda|round-trips|hostile|polling|lists" >&2; exit 2 ;;
esac
source infra/dynamodb-local.sh
[ -x .venv/bin/python ] || { echo "run infra/test.sh once first (it installs .venv)" >&2; exit 1; }
export PATH="$PWD/.venv/bin:$PATH"
start_dynamodb_local
cargo build --locked --quiet -p runnerctl
export RUNNERCTL="${RUNNERCTL:-${CARGO_TARGET_DIR:-$PWD/target}/debug/runnerctl}" TABLE_NAME="bench-$$"
"$RUNNERCTL" table create >/dev/null
[ "$script" = infra/bench/lists_at_scale.py ] ||
  "$RUNNERCTL" seed tests/e2e/fixtures/management.json >/dev/null
.venv/bin/python "$script"
