#!/usr/bin/env python3
"""Runner lists at 100,000 runners: DynamoDB calls, round trips, items and bytes read, latency.

Seeds 100,000 runners over 5,000 projects in 1,000 groups three levels deep (10 roots, 90
groups below them, 900 below those) and 100,000 jobs of one runner, then asks every runner list for its first, a middle and
its last page as the callers the issue names. DynamoDB calls go through a counting proxy, so
each request's items read (a Query's ScannedCount, a batch's items) and response bytes (JSON,
larger than DynamoDB's own item sizes) are what the service really read; calls, round trips and
handler latency come from the request log line (on DynamoDB Local, whose Query on an index
holding 100,000 items takes 1-2 s, so latencies are far above DynamoDB's). Prints Markdown
tables.
Usage: infra/bench/run.sh lists
"""

import http.server
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone

import requests

from round_trips import RUNNERCTL, Server

ADMIN, OWNER, MAINTAINER = "scale-admin", "scale-owner", "scale-maintainer"
ROOTS, CHILDREN_PER_ROOT, LEAVES_PER_CHILD = 10, 9, 10
PROJECTS, OWNER_PROJECTS, MAINTAINED = 5_000, 2_000, range(2_001, 2_201)
INSTANCE, PER_PROJECT, GROUP_RUNNERS_PER_GROUP = 10_000, 17, 5
BUSY_RUNNER, BUSY_JOBS = 10_001, 100_000  # a project runner of project 1
REPEATS = int(os.environ.get("REPEATS", "10"))


def world():
    groups, leaves = [], []
    for root in range(1, ROOTS + 1):
        groups.append({"id": root, "name": f"R{root}", "path": f"r{root}"})
        for c in range(CHILDREN_PER_ROOT):
            child = ROOTS + 1 + (root - 1) * CHILDREN_PER_ROOT + c
            groups.append({"id": child, "name": f"C{child}", "path": f"c{child}", "parent_id": root})
            for leaf_index in range(LEAVES_PER_CHILD):
                leaf = 101 + (child - ROOTS - 1) * LEAVES_PER_CHILD + leaf_index
                groups.append({"id": leaf, "name": f"L{leaf}", "path": f"l{leaf}", "parent_id": child})
                leaves.append(leaf)
    groups[0]["members"] = [{"user_id": 2, "access_level": 50}]
    owner_leaves, other_leaves = leaves[:90], leaves[90:]
    projects = []
    for p in range(1, PROJECTS + 1):
        leaf = owner_leaves[(p - 1) % 90] if p <= OWNER_PROJECTS else other_leaves[(p - 1) % 810]
        project = {"id": p, "name": f"P{p}", "path": f"p{p}", "namespace_id": leaf}
        if p in MAINTAINED:
            project["members"] = [{"user_id": 3, "access_level": 40}]
        projects.append(project)
    now = datetime.now(timezone.utc)
    runners = []

    def ago(**delta):
        return (now - timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"

    def runner(rid, kind, **extra):
        entry = {"id": rid, "token": f"scale-runner-{rid}", "runner_type": kind, **extra}
        tags = ["docker"] if rid % 3 == 0 else []
        if rid % 100 in (4, 5, 10):  # 3,000: a third online, a third never contacted
            tags.append("gpu")
        if tags:
            entry["tag_list"] = tags
        # Half never contacted; of the rest, most seen within the last minute (online), one
        # in 10 three hours ago (offline), one in 10 eight days ago (stale), one in 50 going
        # quiet 45 to 60 minutes ago (online, near the timeout: the contact entries a count
        # reads). Of the never contacted, one in 3 was created ten days ago (stale), one in 50
        # a week less 2 minutes to 23 hours ago (near the stale threshold: the entries a stale
        # count reads, as many as fall in the part of that day after it), the rest with the seed.
        if rid % 2 == 0:
            if rid % 20 == 0:
                entry["contacted_at"] = ago(days=8, minutes=rid % 600)
            elif rid % 20 == 10:
                entry["contacted_at"] = ago(hours=3)
            elif rid % 100 == 2:
                entry["contacted_at"] = ago(minutes=45 + rid % 15)
            else:
                entry["contacted_at"] = ago(seconds=rid % 60)
        elif rid % 100 == 1:
            entry["created_at"] = ago(days=7, minutes=-2 - rid % 1380)
        elif rid % 6 == 1:
            entry["created_at"] = ago(days=10)
        else:
            entry["created_at"] = ago(seconds=rid % 60)
        if rid % 7 == 0:
            entry["active"] = False
        if rid % 4 < 3:  # a quarter each on 15.1.2, 15.10.0 and 16.0.1, a quarter none
            entry["version"] = ["15.1.2", "15.10.0", "16.0.1"][rid % 4]
        runners.append(entry)

    rid = 0
    for _ in range(INSTANCE):
        rid += 1
        runner(rid, "instance_type")
    for p in range(1, PROJECTS + 1):
        for _ in range(PER_PROJECT):
            rid += 1
            runner(rid, "project_type", projects=[p])
    for g in groups:
        for _ in range(GROUP_RUNNERS_PER_GROUP):
            rid += 1
            runner(rid, "group_type", groups=[g["id"]])
    users = [
        {"id": 1, "username": "admin", "admin": True, "tokens": [{"token": ADMIN}]},
        {"id": 2, "username": "owner", "tokens": [{"token": OWNER}]},
        {"id": 3, "username": "maintainer", "tokens": [{"token": MAINTAINER}]},
    ]
    statuses = ["success", "failed", "canceled", "success"]
    jobs = [{"id": j, "runner_id": BUSY_RUNNER, "project_id": 1, "user_id": 1,
             "status": statuses[j % 4], "name": "build", "stage": "test"}
            for j in range(1, BUSY_JOBS + 1)]
    return {"users": users, "groups": groups, "projects": projects, "runners": runners,
            "jobs": jobs}


class Meter:
    """A proxy in front of DynamoDB Local that adds up what each call read."""

    def __init__(self, upstream):
        self.upstream, self.lock = upstream, threading.Lock()
        self.reset()
        meter = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                answer = requests.post(meter.upstream, data=body, headers=headers, timeout=60)
                meter.record(self.headers.get("X-Amz-Target", ""), answer.content)
                self.send_response(answer.status_code)
                for key in ("Content-Type", "x-amzn-RequestId", "x-amz-crc32"):
                    if key in answer.headers:
                        self.send_header(key, answer.headers[key])
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            def log_message(self, *args):
                pass

        class Server(http.server.ThreadingHTTPServer):
            # A list reads up to a few hundred sources at once: the default backlog of 5
            # would refuse most of their connections.
            request_queue_size = 1024
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def reset(self):
        with self.lock:
            self.items, self.bytes = 0, 0

    def record(self, target, content):
        try:
            answer = json.loads(content)
        except ValueError:
            answer = {}
        operation = target.rsplit(".", 1)[-1]
        if operation in ("Query", "Scan"):
            items = answer.get("ScannedCount", 0)
        elif operation == "BatchGetItem":
            items = sum(len(v) for v in answer.get("Responses", {}).values())
        elif operation == "GetItem":
            items = 1 if "Item" in answer else 0
        else:
            items = 0
        with self.lock:
            self.items += items
            self.bytes += len(content)


def main():
    upstream = os.environ["DYNAMODB_ENDPOINT"]
    seed = world()
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(seed, f)
    started = time.monotonic()
    # A bulk import's calls (a 1 MB page of a 100,000-item index on DynamoDB Local) may take
    # longer than a request's timeouts allow.
    slow = dict(os.environ, DYNAMODB_ATTEMPT_TIMEOUT_MS="120000",
                DYNAMODB_OPERATION_TIMEOUT_MS="600000")
    subprocess.run([RUNNERCTL, "seed", f.name], check=True, stdout=subprocess.DEVNULL, env=slow)
    seeded_s = time.monotonic() - started
    os.unlink(f.name)
    meter = Meter(upstream)
    # DynamoDB Local answers a Query on an index holding 100,000 items in 1-2 s (DynamoDB in
    # milliseconds): without these the service would answer 503 before its reads end, and the
    # table would not show what each list reads.
    os.environ.update(DYNAMODB_ENDPOINT=meter.url, DYNAMODB_ATTEMPT_TIMEOUT_MS="120000",
                      DYNAMODB_OPERATION_TIMEOUT_MS="300000", REQUEST_DEADLINE_MS="600000")
    server = Server()
    rows = []

    def measure(list_name, caller, what, path, token, repeats=REPEATS):
        if path.endswith("page=last"):
            # The last page, from the total the first page gives.
            first, _, _ = server.call("GET", path[:-len("&page=last")], token, timeout=300)
            per_page = int(first.headers["X-Per-Page"])
            last = max(1, -(-int(first.headers["X-Total"]) // per_page))
            path = path[:-len("last")] + str(last)
            what = f"{what} ({last:,})"
        latencies = []
        for _ in range(repeats):
            meter.reset()
            # A walked list takes tens of seconds on DynamoDB Local at this size.
            response, calls, rounds = server.call("GET", path, token, timeout=300)
            latencies.append(server.last_latency_ms())
        items, size = meter.items, meter.bytes
        total = response.headers.get("X-Total", "-") or "-"
        latencies.sort()
        p99 = latencies[-1]  # of so few samples, the 99th percentile is the slowest
        rows.append((list_name, caller, what, response.status_code, total, calls, rounds, items,
                     size, statistics.median(latencies), p99))

    try:
        owner_pages = [("page 1", 1), ("page 50", 50), ("page 100 (offset 9,900)", 100),
                       ("page 345, the last (offset 34,400)", 345)]
        for what, page in owner_pages:
            measure("GET /runners", "Owner of a tree of 2,000 projects (34,500 runners)", what,
                    f"/api/v4/runners?per_page=100&page={page}", OWNER)
        for what, page in [("page 1", 1), ("page 34, the last", 34)]:
            measure("GET /runners", "Maintainer of 200 projects (3,400 runners)", what,
                    f"/api/v4/runners?per_page=100&page={page}", MAINTAINER)
        for what, query in [("tag_list=docker (common), page 1", "tag_list=docker"),
                            ("tag_list=docker, the last page", "tag_list=docker&page=last"),
                            ("tag_list=docker&status=online (two common criteria), the last page",
                             "tag_list=docker&status=online&page=last")]:
            measure("GET /runners", "Owner", what, f"/api/v4/runners?per_page=100&{query}", OWNER)
        measure("GET /runners", "Maintainer of 200 projects", "status=online (common), page 1",
                "/api/v4/runners?per_page=100&status=online", MAINTAINER)
        measure("GET /runners", "Owner", "tag_list=gpu (rare), page 1",
                "/api/v4/runners?per_page=100&tag_list=gpu", OWNER)
        measure("GET /runners", "Owner", "tag_list=gpu, page 10",
                "/api/v4/runners?per_page=100&tag_list=gpu&page=10", OWNER)
        measure("GET /runners", "Maintainer of 200 projects",
                "tag_list=gpu&status=online (two criteria), page 1",
                "/api/v4/runners?per_page=100&tag_list=gpu&status=online", MAINTAINER)
        for what, page in [("page 1", 1), ("page 500", 500), ("page 1,000, the last", 1000)]:
            measure("GET /runners/all", "admin", what,
                    f"/api/v4/runners/all?per_page=100&page={page}", ADMIN)
        for what, query in [("type=project_type, page 425 (middle)", "type=project_type&page=425"),
                            ("type=group_type, page 50, the last", "type=group_type&page=50"),
                            ("scope=specific, page 900, the last", "scope=specific&page=900")]:
            measure("GET /runners/all", "admin", what, f"/api/v4/runners/all?per_page=100&{query}",
                    ADMIN)
        for what, query in [
                ("tag_list=docker (33,333), page 1", "tag_list=docker"),
                ("tag_list=docker, page 167 (middle)", "tag_list=docker&page=167"),
                ("tag_list=docker, page 334, the last", "tag_list=docker&page=334"),
                ("tag_list=docker&type=project_type (28,333), page 284, the last",
                 "tag_list=docker&type=project_type&page=284"),
                ("status=paused (14,285), page 72 (middle)", "status=paused&page=72"),
                ("paused=false&scope=specific (77,143), page 772, the last",
                 "paused=false&scope=specific&page=772"),
                ("status=never_contacted (50,000), page 250 (middle)",
                 "status=never_contacted&page=250"),
                ("status=never_contacted&type=group_type (2,500), page 25, the last",
                 "status=never_contacted&type=group_type&page=25"),
                ("tag_list=docker&paused=false (28,571), page 1", "tag_list=docker&paused=false"),
                ("tag_list=docker&paused=false, page 143 (middle)",
                 "tag_list=docker&paused=false&page=143"),
                ("tag_list=docker&paused=false, page 286, the last",
                 "tag_list=docker&paused=false&page=286"),
                ("tag_list=gpu&status=online (two criteria), page 1", "tag_list=gpu&status=online"),
                ("tag_list=gpu&status=online, page 10 (the last)",
                 "tag_list=gpu&status=online&page=10"),
                ("tag_list=gpu&status=offline&type=project_type, page 17 (near the end)",
                 "tag_list=gpu&status=offline&type=project_type&page=17"),
                ("status=online, page 1", "status=online"),
                ("status=online, page 200 (middle)", "status=online&page=200"),
                ("status=online, page 390 (near the end)", "status=online&page=390"),
                ("status=offline&type=project_type, page 500 (near the end)",
                 "status=offline&type=project_type&page=500"),
                ("status=stale (21,333), page 1", "status=stale"),
                ("status=stale, page 107 (middle)", "status=stale&page=107"),
                ("status=stale, page 214, the last", "status=stale&page=214"),
                ("status=stale&type=group_type, the last page",
                 "status=stale&type=group_type&page=11"),
                ("tag_list=gpu&status=stale (two criteria), page 1",
                 "tag_list=gpu&status=stale"),
                ("version_prefix=16.0 (25,000), page 125 (middle)",
                 "version_prefix=16.0&page=125"),
                ("version_prefix=15&type=group_type (2,500), page 25, the last",
                 "version_prefix=15&type=group_type&page=25"),
                ("tag_list=gpu&version_prefix=15.1 (two criteria), page 1",
                 "tag_list=gpu&version_prefix=15.1")]:
            measure("GET /runners/all", "admin", what, f"/api/v4/runners/all?per_page=100&{query}",
                    ADMIN)
        for what, query in [("tag_list=docker&status=online (two common criteria), page 1",
                             "tag_list=docker&status=online"),
                            ("tag_list=docker&status=online, the last page",
                             "tag_list=docker&status=online&page=last"),
                            ("tag_list=docker&version_prefix=16&paused=false (three common), "
                             "the last page",
                             "tag_list=docker&version_prefix=16&paused=false&page=last"),
                            ("scope=stale&status=offline (every runner's set less two), "
                             "the last page", "scope=stale&status=offline&page=last")]:
            measure("GET /runners/all", "admin", what, f"/api/v4/runners/all?per_page=100&{query}",
                    ADMIN)
        deep = 2_500  # in a leaf, three groups deep: 17 + 15 group runners + 10,000 instance
        for what, page in [("page 1", 1), ("page 51 (middle)", 51), ("page 101, the last", 101)]:
            measure("GET /projects/:id/runners", "admin, project three groups deep", what,
                    f"/api/v4/projects/{deep}/runners?per_page=100&page={page}", ADMIN)
        for what, query in [("tag_list=docker (3,344), page 1", "tag_list=docker"),
                            ("tag_list=docker, page 34, the last", "tag_list=docker&page=34"),
                            ("status=paused (1,434), page 15, the last", "status=paused&page=15"),
                            ("status=online, page 41 (middle)", "status=online&page=41"),
                            ("status=offline, page 60 (near the end)", "status=offline&page=60"),
                            ("status=stale, page 1", "status=stale"),
                            ("tag_list=gpu&status=online (two criteria), page 1",
                             "tag_list=gpu&status=online"),
                            ("tag_list=gpu&version_prefix=16&paused=false (three criteria), page 1",
                             "tag_list=gpu&version_prefix=16&paused=false"),
                            ("tag_list=docker&status=online (two common criteria), the last page",
                             "tag_list=docker&status=online&page=last")]:
            measure("GET /projects/:id/runners", "admin, project three groups deep", what,
                    f"/api/v4/projects/{deep}/runners?per_page=100&{query}", ADMIN)
        measure("GET /groups/:id/runners", "admin, a leaf group", "page 101, the last",
                "/api/v4/groups/500/runners?per_page=100&page=101", ADMIN)
        measure("GET /groups/:id/runners", "admin, a leaf group", "tag_list=docker (3,338), page 34, the last",
                "/api/v4/groups/500/runners?per_page=100&tag_list=docker&page=34", ADMIN)
        measure("GET /groups/:id/runners", "admin, a leaf group", "status=offline, page 60 (near the end)",
                "/api/v4/groups/500/runners?per_page=100&status=offline&page=60", ADMIN)
        measure("GET /groups/:id/runners", "admin, a leaf group", "status=stale, page 1",
                "/api/v4/groups/500/runners?per_page=100&status=stale", ADMIN)
        measure("GET /groups/:id/runners", "admin, a leaf group",
                "tag_list=docker&status=stale (two common criteria), page 1",
                "/api/v4/groups/500/runners?per_page=100&tag_list=docker&status=stale", ADMIN)
        jobs = f"/api/v4/runners/{BUSY_RUNNER}/jobs?per_page=100"
        for what, query, token in [
                ("page 1", "", ADMIN), ("page 500 (middle)", "&page=500", ADMIN),
                ("page 1,000, the last", "&page=1000", ADMIN),
                ("newest first, page 1,000", "&order_by=id&sort=desc&page=1000", ADMIN),
                ("page 500, as the Owner of its project's group", "&page=500", OWNER),
                ("status=failed (25,000), page 1", "&status=failed", ADMIN),
                ("status=failed, page 125 (middle)", "&status=failed&page=125", ADMIN),
                ("status=failed, newest first, page 250, the last",
                 "&status=failed&order_by=id&sort=desc&page=250", ADMIN)]:
            measure("GET /runners/:id/jobs", "a runner with 100,000 jobs", what, jobs + query,
                    token)
    finally:
        server.stop()
        meter.server.shutdown()
    print(f"Seeded {len(seed['runners']):,} runners, {len(seed['projects']):,} projects, "
          f"{len(seed['groups']):,} groups and {len(seed['jobs']):,} jobs in {seeded_s:.0f} s; "
          f"{REPEATS} requests per row.\n")
    print("| list | caller | page | status | X-Total | calls | round trips | items read | "
          "bytes read (JSON) | p50 ms | p99 ms |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        name, caller, what, status, total, calls, rounds, items, size, p50, p99 = row
        print(f"| {name} | {caller} | {what} | {status} | {total} | {calls} | {rounds} | "
              f"{items:,} | {size / 1e6:.2f} MB | {p50:.0f} | {p99:.0f} |")


if __name__ == "__main__":
    main()
