"""End-to-end fixtures: `runnerctl serve` as a real HTTP server, against the DynamoDB Local that
infra/test.sh starts (DYNAMODB_ENDPOINT), on a table of its own seeded from fixtures/world.json."""

import os
import pathlib
import socket
import subprocess
import time
import uuid

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = pathlib.Path(__file__).resolve().parent / "fixtures"


def runnerctl():
    """The binary infra/test.sh built; the one place that knows where cargo puts it."""
    value = os.environ.get("RUNNERCTL")
    if not value:
        pytest.fail("RUNNERCTL is not set: run the tests with infra/test.sh")
    return value


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A running `runnerctl serve` and what it printed at start-up."""

    def __init__(self, env, extra_args=()):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [runnerctl(), "serve", "--port", str(self.port), *extra_args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=ROOT,
        )
        self.banner = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError(f"runnerctl serve exited early: {self.banner}")
            self.banner.append(line.rstrip("\n"))
            if line.startswith("Stop with Ctrl-C"):
                return
        raise RuntimeError("runnerctl serve did not start within 60 s")

    def printed(self, prefix):
        for line in self.banner:
            if line.startswith(prefix):
                return line.rsplit(" ", 1)[-1]
        return None

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()


@pytest.fixture(scope="session")
def endpoint():
    value = os.environ.get("DYNAMODB_ENDPOINT")
    if not value:
        pytest.fail("DYNAMODB_ENDPOINT is not set: run the tests with infra/test.sh")
    return value


def serve_fixture(endpoint, fixture):
    """`runnerctl serve` on a new table seeded from fixtures/<fixture>."""
    env = dict(os.environ, TABLE_NAME=f"e2e-{uuid.uuid4().hex[:12]}", DYNAMODB_ENDPOINT=endpoint)
    subprocess.run([runnerctl(), "table", "create"], env=env, check=True, capture_output=True)
    subprocess.run([runnerctl(), "seed", str(FIXTURES / fixture)], env=env, check=True, capture_output=True)
    return Server(env)


@pytest.fixture(scope="session")
def server(endpoint):
    running = serve_fixture(endpoint, "world.json")
    yield running
    running.stop()


@pytest.fixture(scope="session")
def management_url(endpoint):
    running = serve_fixture(endpoint, "management.json")
    yield running.url
    running.stop()


@pytest.fixture(scope="session")
def base_url(server):
    return server.url
