#!/usr/bin/env python3
"""Sequential DynamoDB round trips per endpoint, as the service itself counts them.

Starts `runnerctl serve` on the table infra/bench/run.sh seeded from
tests/e2e/fixtures/management.json, sends one request per endpoint and caller, and reads each
request's log line (`ddb_calls`, `ddb_round_trips`). Prints a Markdown table next to the budget
each issue set. Figures, not assertions (the Rust tests assert the budgets).
Usage: infra/bench/run.sh round-trips
"""

import os
import re
import socket
import subprocess
import sys
import threading
import time

import requests

RUNNERCTL = os.environ.get("RUNNERCTL") or sys.exit("RUNNERCTL is not set: use infra/bench/run.sh")
ADMIN, MAINTAINER = "mgmt-root-pat", "mgmt-user-pat"  # the fixture's users
LOG_LINE = re.compile(
    r"method=(\S+) path=(\S+) status=(\d+) latency_ms=([\d.]+) ddb_calls=(\d+) "
    r"ddb_round_trips=(\d+)"
)


class Server:
    """`runnerctl serve` whose request log lines arrive on a queue-like list."""

    def __init__(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, RUST_LOG="info", NO_COLOR="1")
        self.process = subprocess.Popen(
            [RUNNERCTL, "serve", "--port", str(self.port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines = []
        self.seen = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        sys.exit("runnerctl serve did not start within 60 s")

    def _read(self):
        for line in self.process.stderr:
            match = LOG_LINE.search(line)
            if match:
                with self.seen:
                    self.lines.append(match.groups())
                    self.seen.notify_all()

    def call(self, method, path, token=None, timeout=30, **kwargs):
        """One request; returns (status, ddb_calls, round_trips) from its log line."""
        headers = {**({"PRIVATE-TOKEN": token} if token else {}), **kwargs.pop("headers", {})}
        count = len(self.lines)
        response = requests.request(method, self.url + path, headers=headers, timeout=timeout,
                                    **kwargs)
        with self.seen:
            if not self.seen.wait_for(lambda: len(self.lines) > count, timeout=10):
                sys.exit(f"no request log line for {method} {path} within 10 s")
            _, _, status, _, calls, rounds = self.lines[count]
        assert int(status) == response.status_code, (status, response.status_code)
        return response, int(calls), int(rounds)

    def last_latency_ms(self):
        """The handler time of the last request, from its log line."""
        return float(self.lines[-1][3])

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=15)


def main():
    server = Server()
    rows = []

    def measure(endpoint, caller, budget, method, path, token=None, **kwargs):
        response, calls, rounds = server.call(method, path, token, **kwargs)
        rows.append((endpoint, caller, response.status_code, calls, rounds, budget))
        return response

    try:
        registered = measure(
            "POST /runners", "instance registration token", "<= 3",
            "POST", "/api/v4/runners", data={"token": "mgmt-instance-token", "description": "b"},
        ).json()
        measure("POST /runners", "unknown token", "<= 3", "POST", "/api/v4/runners",
                data={"token": "nope"})
        runner_token = {"token": registered["token"]}
        measure("POST /runners/verify", "first heartbeat (written)", "<= 2",
                "POST", "/api/v4/runners/verify", data=runner_token)
        measure("POST /runners/verify", "within 60 s (write skipped)", "1",
                "POST", "/api/v4/runners/verify", data=runner_token)
        measure("POST /jobs/request", "nothing to run, heartbeat written", "-",
                "POST", "/api/v4/jobs/request", json={"token": "mgmt-runner-12"})
        measure("POST /jobs/request", "nothing to run, heartbeat fresh (no write)", "<= 2",
                "POST", "/api/v4/jobs/request", json={"token": "mgmt-runner-12"})
        measure("DELETE /runners", "runner token", "<= 3", "DELETE", "/api/v4/runners",
                params=runner_token)

        measure("GET /runners", "group maintainer (2 projects, nested)", "<= 5",
                "GET", "/api/v4/runners", MAINTAINER)
        measure("GET /runners", "... with tag_list=docker&status=active", "<= 5",
                "GET", "/api/v4/runners?tag_list=docker&status=active", MAINTAINER)
        measure("GET /runners/all", "admin", "<= 3", "GET", "/api/v4/runners/all", ADMIN)
        measure("GET /runners/all", "admin, page 3 of 3", "<= 3",
                "GET", "/api/v4/runners/all?per_page=20&page=3", ADMIN)
        for caller, token, budget in (("admin", ADMIN, "<= 2"), ("maintainer", MAINTAINER, "<= 3")):
            measure("GET /runners/:id", caller, budget, "GET", "/api/v4/runners/1", token)
        for caller, token in (("admin", ADMIN), ("maintainer", MAINTAINER)):
            measure("PUT /runners/:id", caller, "<= 4", "PUT", "/api/v4/runners/1", token,
                    data={"description": f"by {caller}"})
        for caller, token in (("admin", ADMIN), ("maintainer", MAINTAINER)):
            measure("GET /runners/:id/jobs", caller + ", status=failed", "<= 3",
                    "GET", "/api/v4/runners/1/jobs?status=failed", token)
            measure("GET /runners/:id/jobs", caller + ", no filter", "<= 3",
                    "GET", "/api/v4/runners/1/jobs", token)
        measure("DELETE /runners/:id", "admin", "<= 4", "DELETE", "/api/v4/runners/3", ADMIN)
        measure("DELETE /runners/:id", "maintainer", "<= 4",
                "DELETE", "/api/v4/runners/4", MAINTAINER)
        # Today's workflow (issue 9).
        created = measure("POST /user/runners", "admin, instance runner", "<= 4", "POST",
                          "/api/v4/user/runners", ADMIN, json={"runner_type": "instance_type"}).json()
        measure("POST /user/runners", "maintainer, project runner", "<= 4", "POST",
                "/api/v4/user/runners", MAINTAINER,
                json={"runner_type": "project_type", "project_id": 100})
        host = {"token": created["token"], "system_id": "s_bench0000001"}
        measure("POST /runners/verify", "with system_id, first (written)", "<= 2",
                "POST", "/api/v4/runners/verify", json=host)
        measure("POST /runners/verify", "with system_id, both fresh", "1",
                "POST", "/api/v4/runners/verify", json=host)
        measure("POST /runners/verify", "second system_id, runner fresh", "<= 2", "POST",
                "/api/v4/runners/verify", json={**host, "system_id": "s_bench0000002"})
        measure("GET /runners/:id/managers", "admin", "-", "GET",
                f"/api/v4/runners/{created['id']}/managers", ADMIN)
        measure("DELETE /runners/managers", "runner token", "-", "DELETE",
                "/api/v4/runners/managers", json=host)
        for caller, token in (("admin", ADMIN), ("maintainer", MAINTAINER)):
            measure("POST /runners/:id/reset_authentication_token", caller, "<= 3", "POST",
                    "/api/v4/runners/5/reset_authentication_token", token)
        rotated = measure("POST /runners/reset_authentication_token", "runner token", "<= 3",
                          "POST", "/api/v4/runners/reset_authentication_token",
                          json={"token": created["token"]}).json()
        measure("POST /runners/reset_registration_token", "admin", "-", "POST",
                "/api/v4/runners/reset_registration_token", ADMIN)
        measure("POST /projects/:id/runners/reset_registration_token", "maintainer", "-", "POST",
                "/api/v4/projects/100/runners/reset_registration_token", MAINTAINER)
        measure("POST /groups/:id/runners/reset_registration_token", "admin", "-", "POST",
                "/api/v4/groups/10/runners/reset_registration_token", ADMIN)
        measure("GET /groups/:id/runners", "maintainer", "-", "GET",
                "/api/v4/groups/10/runners", MAINTAINER)
        measure("DELETE /runners", "runner with a manager", "<= 3", "DELETE", "/api/v4/runners",
                json={"token": rotated["token"]})

        measure("GET /user", "maintainer", "-", "GET", "/api/v4/user", MAINTAINER)
        measure("GET /version", "maintainer", "-", "GET", "/api/v4/version", MAINTAINER)

        measure("GET /projects/:id/runners", "maintainer, project 2 groups deep, by id", "<= 4",
                "GET", "/api/v4/projects/101/runners", MAINTAINER)
        measure("GET /projects/:id/runners", "maintainer, by path, scope=specific", "<= 4",
                "GET", "/api/v4/projects/team%2Fplatform%2Fapi/runners?scope=specific", MAINTAINER)
        measure("POST /projects/:id/runners", "maintainer", "<= 4",
                "POST", "/api/v4/projects/101/runners", MAINTAINER, data={"runner_id": 2})
        measure("DELETE /projects/:id/runners/:runner_id", "maintainer", "<= 4",
                "DELETE", "/api/v4/projects/101/runners/2", MAINTAINER)
        server.call("POST", "/api/v4/projects/101/runners", MAINTAINER, data={"runner_id": 2})
        measure("DELETE /projects/:id/runners/:runner_id", "maintainer, If-Unmodified-Since",
                "<= 4", "DELETE", "/api/v4/projects/101/runners/2", MAINTAINER,
                headers={"If-Unmodified-Since": "Fri, 01 Jan 2100 00:00:00 GMT"})

        # Jobs: enqueued for project 101, whose runner 47 takes untagged jobs.
        created = measure("POST /projects/:id/jobs", "admin", "<= 3", "POST",
                          "/api/v4/projects/101/jobs", ADMIN,
                          json={"name": "bench", "script": ["true"], "ref": "dev"}).json()
        taken = measure("POST /jobs/request", "assigns a job", "<= 4", "POST",
                        "/api/v4/jobs/request", json={"token": "mgmt-runner-47"}).json()
        job = f"/api/v4/jobs/{taken['id']}"
        measure("PATCH /jobs/:id/trace", "job token", "<= 2", "PATCH", job + "/trace",
                data=b"log line\n", headers={"JOB-TOKEN": taken["token"], "Content-Range": "0-8",
                                              "Content-Type": "text/plain"})
        measure("PUT /jobs/:id", "state=success", "<= 2", "PUT", job,
                json={"token": taken["token"], "state": "success"})
        jobs = f"/api/v4/projects/101/jobs"
        measure("GET /projects/:id/jobs", "admin", "<= 3", "GET", jobs, ADMIN)
        measure("GET /projects/:id/jobs/:job_id", "admin", "<= 3", "GET",
                f"{jobs}/{created['id']}", ADMIN)
        measure("GET /projects/:id/jobs/:job_id/trace", "admin", "-", "GET",
                f"{jobs}/{created['id']}/trace", ADMIN)
        retried = measure("POST .../jobs/:job_id/retry", "admin", "-", "POST",
                          f"{jobs}/{created['id']}/retry", ADMIN).json()
        measure("POST .../jobs/:job_id/cancel", "admin, pending job", "-", "POST",
                f"{jobs}/{retried['id']}/cancel", ADMIN)
    finally:
        server.stop()

    print("| endpoint | caller | status | DynamoDB calls | sequential round trips | budget |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(str(cell) for cell in row) + " |")


if __name__ == "__main__":
    main()
