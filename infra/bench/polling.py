#!/usr/bin/env python3
"""What an idle poll costs, measured, and the monthly AWS bill of runners polling with nothing to
do, computed from it.

Starts `runnerctl serve` on the table infra/bench/run.sh seeded from
tests/e2e/fixtures/management.json, polls `POST /api/v4/jobs/request` as an instance runner and as
a project runner (nothing is pending), and reads each request's log line: DynamoDB calls, round
trips and the handler's latency. The cost table uses those counts; the Lambda duration on AWS is
not measurable here, so it is stated as the measured handler time plus the DynamoDB round trips at
an assumed in-region latency (see ASSUMED_DYNAMODB_MS).
Usage: infra/bench/run.sh polling
"""

import statistics
import time

import requests

from round_trips import Server  # same harness and log parsing as the round-trip figures

POLLS = 300
ASSUMED_DYNAMODB_MS = 4.0  # one in-region DynamoDB round trip from Lambda (typical, not measured)
ASSUMED_COMPUTE_MS = 2.0  # the handler's own work at 128 MB (a fraction of a vCPU)
SECONDS_PER_MONTH = 30 * 24 * 3600
# Public on-demand prices, us-east-1 (2025-2026): API Gateway HTTP API $1.00 per million requests
# (first 300 M); Lambda arm64 $0.20 per million requests and $0.0000133334 per GB-second;
# DynamoDB on-demand $0.125 per million read request units and $0.625 per million write units.
API_PER_REQUEST = 1.00 / 1e6
LAMBDA_PER_REQUEST = 0.20 / 1e6
LAMBDA_PER_MS_128MB = 0.0000133334 * 0.125 / 1000
READ_UNIT = 0.125 / 1e6
WRITE_UNIT = 0.625 / 1e6


def measure(server, token, label):
    server.call("POST", "/api/v4/jobs/request", json={"token": token})  # writes the heartbeat
    latencies, calls, rounds = [], set(), set()
    for _ in range(POLLS):
        response, c, r = server.call("POST", "/api/v4/jobs/request", json={"token": token})
        assert response.status_code == 204, response.status_code
        line = server.last_latency_ms()
        latencies.append(line)
        calls.add(c)
        rounds.add(r)
    latencies.sort()
    return {
        "label": label,
        "calls": sorted(calls),
        "rounds": sorted(rounds),
        "p50": statistics.median(latencies),
        "p99": latencies[int(len(latencies) * 0.99) - 1],
    }


def monthly(runners, interval_s, lambda_ms, read_units, write_units_per_minute):
    polls = runners * SECONDS_PER_MONTH / interval_s
    api = polls * API_PER_REQUEST
    lam = polls * (LAMBDA_PER_REQUEST + max(1.0, lambda_ms) * LAMBDA_PER_MS_128MB)
    ddb = polls * read_units * READ_UNIT
    ddb += runners * write_units_per_minute * (SECONDS_PER_MONTH / 60) * WRITE_UNIT
    return polls, api, lam, ddb


def main():
    server = Server()
    try:
        rows = [measure(server, "mgmt-runner-46", "instance runner (1 queue)"),
                measure(server, "mgmt-runner-44", "project runner, 1 project (1 queue)")]
    finally:
        server.stop()
    print(f"{POLLS} idle polls each, heartbeat fresh (no write), debug build on DynamoDB Local:\n")
    print("| runner | DynamoDB calls | round trips | handler p50 ms | p99 ms |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['label']} | {r['calls']} | {r['rounds']} | {r['p50']:.2f} | {r['p99']:.2f} |")

    handler_ms = rows[0]["p50"]
    # Reads per idle poll: token and runner (strongly consistent, under 4 KB: 1 unit each) and one
    # empty Query of a queue (eventually consistent: 0.5 unit). Heartbeat: once a minute, a
    # transaction of two updates (2 units each) plus the runner's two ALL-projected indexes (1 each).
    read_units, write_units = 2.5, 6
    lambda_ms = 2 * ASSUMED_DYNAMODB_MS + ASSUMED_COMPUTE_MS
    print(f"\nLambda duration used: 2 round trips x {ASSUMED_DYNAMODB_MS} ms + "
          f"{ASSUMED_COMPUTE_MS} ms = {lambda_ms:.1f} ms (here, against DynamoDB Local, the whole "
          f"handler took {handler_ms:.2f} ms at p50), billed per started ms.\n")
    print("| runners, every 3 s | polls/month | API Gateway | Lambda arm64 128 MB | DynamoDB | total/month |")
    print("|---|---|---|---|---|---|")
    for runners in (100, 1000):
        polls, api, lam, ddb = monthly(runners, 3, lambda_ms, read_units, write_units)
        print(f"| {runners} | {polls / 1e6:.1f} M | ${api:,.2f} | ${lam:,.2f} | ${ddb:,.2f} | "
              f"${api + lam + ddb:,.2f} |")


if __name__ == "__main__":
    main()
