#!/usr/bin/env python3
"""Time to answer each hostile request of issue 10, and how long a request waits when DynamoDB
stalls. Starts `runnerctl serve` ($RUNNERCTL, so an older build can be measured the same way)
behind a TCP proxy to DynamoDB Local that can be told to stall, on the table infra/bench/run.sh
seeded from tests/e2e/fixtures/management.json. Prints a Markdown table. The request that
crashed older builds goes last. Figures, not assertions (the Rust tests assert the answers).
Usage: infra/bench/run.sh hostile
"""

import concurrent.futures
import os
import socket
import threading
import time
import urllib.parse

import requests

ENDPOINT = os.environ["DYNAMODB_ENDPOINT"]
ADMIN = "mgmt-root-pat"  # the fixture's admin
REGISTRATION, RUNNER = "mgmt-instance-token", "mgmt-runner-1"
WAIT = 90  # seconds a case may take before it counts as "no answer"


class StallingProxy:
    """Forwards TCP to DynamoDB Local; while stalled, takes requests and never answers."""

    def __init__(self, target):
        self.target = urllib.parse.urlparse(target)
        self.stalled = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            client, _ = self.listener.accept()
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client):
        server = socket.create_connection((self.target.hostname, self.target.port))

        def pump(source, sink, upstream):
            try:
                while data := source.recv(65536):
                    if upstream and self.stalled.is_set():
                        continue  # swallowed: the client never gets an answer
                    sink.sendall(data)
            except OSError:
                pass
            finally:
                for s in (client, server):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        threading.Thread(target=pump, args=(server, client, False), daemon=True).start()
        pump(client, server, True)


def timed(method, url, **kwargs):
    """(status or failure, seconds)."""
    started = time.monotonic()
    try:
        response = requests.request(method, url, timeout=WAIT, **kwargs)
        kind = "JSON" if response.headers.get("content-type") == "application/json" else "text"
        outcome = f"{response.status_code} {kind} {response.text[:70]}"
    except requests.exceptions.Timeout:
        outcome = f"no answer in {WAIT} s"
    except requests.exceptions.ConnectionError:
        outcome = "connection dropped (process died)"
    return outcome, time.monotonic() - started


def main():
    proxy = StallingProxy(ENDPOINT)
    os.environ["DYNAMODB_ENDPOINT"] = proxy.url
    from round_trips import Server  # reads RUNNERCTL; same server harness as the other figures

    server = Server()
    url = server.url + "/api/v4"
    admin = {"PRIVATE-TOKEN": ADMIN}
    rows = []

    def case(name, method, path, **kwargs):
        outcome, seconds = timed(method, url + path, **kwargs)
        rows.append((name, outcome, seconds))

    tags = ",".join(f"{i:x}" for i in range(120_000))
    case("2. 120,000 tags, no token", "POST", "/runners", data={"tag_list": tags})

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(
            lambda i: requests.put(f"{url}/runners/1", headers=admin,
                                   json={"description": f"update {i}"}, timeout=WAIT).status_code,
            range(10)))
    rows.append(("4. 10 parallel PUT /runners/1",
                 " ".join(f"{answers.count(s)}x{s}" for s in sorted(set(answers))),
                 time.monotonic() - started))

    huge = {"token": REGISTRATION, "info": {"platform": "x" * 500_000}}
    case("5a. register, info.platform 500 KB", "POST", "/runners", json=huge)
    case("5b. verify, info.version 500 KB", "POST", "/runners/verify",
         json={"token": RUNNER, "info": {"version": "x" * 500_000}})
    case("6. project path of 2,201 bytes", "GET", "/projects/" + "a%2F" * 1100 + "p/runners",
         headers=admin)
    case("7a. GET /runners/%FF, no token", "GET", "/runners/%FF")
    case("7b. GET /projects/%FF/runners, no token", "GET", "/projects/%FF/runners")
    case("8. valid header, unknown private_token", "GET", "/user?private_token=unknown",
         headers=admin)
    case("9. enable runner_id [1, 2]", "POST", "/projects/101/runners", headers=admin,
         json={"runner_id": [1, 2]})

    proxy.stalled.set()
    case("3a. verify while DynamoDB stalls", "POST", "/runners/verify", data={"token": RUNNER})
    case("3b. GET /runners/all while DynamoDB stalls", "GET", "/runners/all", headers=admin)
    proxy.stalled.clear()
    case("3c. verify after the stall ends (same process)", "POST", "/runners/verify",
         data={"token": RUNNER})

    nested = "a" + "[b]" * 60_000
    case("1a. form key nested 60,000 deep, no token", "POST", "/runners", data={nested: "x"})
    alive, _ = timed("GET", url + "/version", headers=admin)
    rows.append(("1b. then GET /version", alive, 0.0))

    print(f"runnerctl: {os.environ['RUNNERCTL']}\n")
    print("| case | answer | seconds |\n|---|---|---|")
    for name, outcome, seconds in sorted(rows):
        print(f"| {name} | {outcome.replace('|', '/')} | {seconds:.2f} |")
    server.process.kill()


if __name__ == "__main__":
    main()
