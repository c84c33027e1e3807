"""Runs the function binaries as Lambda functions: `cargo lambda watch` (the Lambda Runtime API
emulator, no Docker) against DynamoDB Local, fed with API Gateway HTTP API (payload 2.0) events."""

import json
import os
import pathlib
import shutil
import socket
import subprocess
import time
import uuid

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
EVENTS = pathlib.Path(__file__).resolve().parent / "events"
FIXTURE = ROOT / "tests" / "e2e" / "fixtures" / "management.json"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Emulator:
    def __init__(self, port):
        self.port = port

    def invoke(self, function, event):
        """Sends one event to a function; returns API Gateway's view of the answer."""
        result = subprocess.run(
            ["cargo", "lambda", "invoke", function, "--data-file", str(event), "-A", "127.0.0.1", "-P", str(self.port)],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=ROOT,
        )
        assert result.returncode == 0, f"invoke {function} {event.name}: {result.stderr}"
        return json.loads(result.stdout)

    def invoke_json(self, function, event_json, tmp_path):
        path = tmp_path / f"{uuid.uuid4().hex}.json"
        path.write_text(json.dumps(event_json))
        return self.invoke(function, path)


def seeded_table(runnerctl):
    """A new table seeded from the management fixture; its name."""
    table = f"lambda-{uuid.uuid4().hex[:12]}"
    env = dict(os.environ, TABLE_NAME=table)
    subprocess.run([runnerctl, "table", "create"], env=env, check=True, capture_output=True)
    subprocess.run([runnerctl, "seed", str(FIXTURE)], env=env, check=True, capture_output=True)
    return table


def required_environment():
    endpoint = os.environ.get("DYNAMODB_ENDPOINT")
    if not endpoint:
        pytest.fail("DYNAMODB_ENDPOINT is not set: run the tests with infra/test.sh")
    runnerctl = os.environ.get("RUNNERCTL")
    if not runnerctl:
        pytest.fail("RUNNERCTL is not set: run the tests with infra/test.sh")
    if shutil.which("cargo-lambda") is None:
        pytest.fail("cargo-lambda is not on PATH: infra/test.sh installs it into .venv")
    return endpoint, runnerctl


class Watch:
    """`cargo lambda watch` serving every function with the environment Lambda would set."""

    def __init__(self, runnerctl, endpoint, table, extra_env=(), log_name="lambda-watch.log"):
        self.port = free_port()
        function_env = ",".join(
            [
                f"AWS_ENDPOINT_URL_DYNAMODB={endpoint}",
                "AWS_ACCESS_KEY_ID=local",
                "AWS_SECRET_ACCESS_KEY=local",
                "AWS_REGION=us-east-1",
                f"TABLE_NAME={table}",
                "RUST_LOG=warn",
                *extra_env,
            ]
        )
        self.log = open(pathlib.Path(runnerctl).parents[1] / log_name, "w")
        self.process = subprocess.Popen(
            ["cargo", "lambda", "watch", "--ignore-changes", "-A", "127.0.0.1", "-P", str(self.port),
             "--env-var", function_env],
            cwd=ROOT,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.2)
        self.stop()
        pytest.fail("cargo lambda watch did not listen within 60 s")

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


@pytest.fixture(scope="session")
def emulator():
    endpoint, runnerctl = required_environment()
    watch = Watch(runnerctl, endpoint, seeded_table(runnerctl))
    yield Emulator(watch.port)
    watch.stop()
