#!/usr/bin/env python3
"""Size, cold-start and memory figures for the Lambda function binaries (issue 11).

For each function and a hello-world `lambda_runtime` binary built the same way:
  * release `bootstrap` size and zipped size (arm64 when its target is installed, and x86_64);
  * cold init: time from process start to the runtime's first `GET .../invocation/next` against a
    local Lambda Runtime API (this script), median of 10 starts, x86_64 (the host);
  * init + first request: from process start to the first answer, with DynamoDB reached over TLS
    (a terminator in front of DynamoDB Local with a CA made for the run, trusted through
    `AWS_CA_BUNDLE`), so that work moved from init into the first request is counted;
  * peak RSS (VmHWM) after serving 1,000 API Gateway events back to back, and their mean latency
    (plain HTTP to DynamoDB Local, as the figures before TLS were measured).
Figures, not assertions. Needs DYNAMODB_ENDPOINT (DynamoDB Local), openssl and cargo-lambda.
Usage: infra/bench/run.sh lambda   (starts DynamoDB Local, then runs this and prints a Markdown table)
"""

import http.server
import tempfile
import urllib.parse
import io
import json
import os
import pathlib
import queue
import statistics
import subprocess
import sys
import threading
import time
import uuid
import zipfile

ROOT = pathlib.Path(__file__).resolve().parents[2]
EVENTS = ROOT / "tests" / "lambda" / "events"
# The tree whose functions are built and measured: this one, or (BUILD_ROOT) another checkout,
# e.g. a worktree of an earlier commit, to compare before and after with the same script.
BUILD_ROOT = pathlib.Path(os.environ.get("BUILD_ROOT") or ROOT)
FUNCTIONS = {
    # binary: (event served 1,000 times, what it exercises)
    "runner-token": ("runner-token/verify.json", "verify, heartbeat skipped: 1 DynamoDB read"),
    "runner-management": ("runner-management/get.json", "GET /runners/:id as admin: 2 rounds"),
    "project-runners": ("project-runners/list-by-path.json", "GET /projects/:path/runners: 3 rounds"),
    "runner-jobs": ("runner-jobs/request-project-runner.json", "jobs/request, nothing to run: 2 rounds"),
    "project-jobs": ("project-jobs/list.json", "GET /projects/:id/jobs: 2 rounds"),
    "sweeper": ("../scheduled/sweeper.json", "a sweep with nothing stuck"),
    "hello-lambda": (None, "hello world, no I/O"),
}
STARTS = 10
REQUESTS = 1000


class RuntimeApi(http.server.ThreadingHTTPServer):
    """The part of the Lambda Runtime API a function uses: next, response, error."""

    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a cold-start measurement kills the function mid-request: expected

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.events = queue.Queue()
        self.responses = queue.Queue()
        self.first_next = None

    @property
    def address(self):
        return f"127.0.0.1:{self.server_address[1]}"


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # One write per answer and no Nagle: otherwise delayed ACKs add ~40 ms to every request.
    wbufsize = -1
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.server.first_next is None:
            self.server.first_next = time.perf_counter()
        event = self.server.events.get()
        payload = json.dumps(event).encode()
        self.send_response(200)
        for name, value in [
            ("Lambda-Runtime-Aws-Request-Id", str(uuid.uuid4())),
            ("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 30000)),
            ("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:bench"),
            ("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000"),
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(payload))),
        ]:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        body = self.rfile.read(length)
        self.server.responses.put((self.path, body))
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()


def build(arm64):
    args = ["cargo", "lambda", "build", "--release", "--lambda-dir", str(out_dir(arm64))]
    for name in FUNCTIONS:
        args += ["--bin", name]
    if arm64:
        args.append("--arm64")
    subprocess.run(args, cwd=BUILD_ROOT, check=True)


def out_dir(arm64):
    return BUILD_ROOT / "target" / ("lambda-arm64" if arm64 else "lambda-x86_64")


def sizes(binary):
    raw = binary.stat().st_size
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(binary, "bootstrap")
    return raw, len(buffer.getvalue())


def function_env(api, table, endpoint=None, ca_bundle=None):
    env = {
        "PATH": os.environ["PATH"],
        "AWS_LAMBDA_RUNTIME_API": api.address,
        "AWS_LAMBDA_FUNCTION_NAME": "bench",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_ENDPOINT_URL_DYNAMODB": endpoint or os.environ["DYNAMODB_ENDPOINT"],
        "TABLE_NAME": table,
        "RUST_LOG": "warn",
    }
    if ca_bundle:
        env["AWS_CA_BUNDLE"] = str(ca_bundle)
        # A build that loads the system trust store (before issue 11) finds the test CA there,
        # beside the system's own roots, so that it pays what it would pay on Lambda.
        env["SSL_CERT_FILE"] = str(system_store_with(ca_bundle))
    return env


def system_store_with(ca):
    combined = pathlib.Path(ca).with_name("system-and-test-ca.pem")
    if not combined.exists():
        system = pathlib.Path("/etc/ssl/certs/ca-certificates.crt")
        combined.write_bytes((system.read_bytes() if system.exists() else b"") + pathlib.Path(ca).read_bytes())
    return combined


def load_event(event_file):
    return json.loads((EVENTS / event_file).read_text()) if event_file else {"hello": "world"}


def first_answer_ms(binary, table, event_file, tls):
    """From process start to the first answer, the event waiting before the process starts."""
    api = RuntimeApi()
    threading.Thread(target=api.serve_forever, daemon=True).start()
    api.events.put(load_event(event_file))
    endpoint, ca = tls
    started = time.perf_counter()
    process = subprocess.Popen([str(binary)], env=function_env(api, table, endpoint, ca),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    path, body = api.responses.get(timeout=30)
    elapsed = (time.perf_counter() - started) * 1000
    process.kill()
    process.wait()
    api.shutdown()
    ok = path.endswith("/response") and json.loads(body).get("statusCode", 200) < 500
    return elapsed if ok else float("nan")


def cold_init_ms(binary, table):
    api = RuntimeApi()
    threading.Thread(target=api.serve_forever, daemon=True).start()
    started = time.perf_counter()
    process = subprocess.Popen([str(binary)], env=function_env(api, table), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while api.first_next is None and process.poll() is None:
        time.sleep(0.0005)
    elapsed = (api.first_next - started) * 1000 if api.first_next else float("nan")
    process.kill()
    process.wait()
    api.shutdown()
    return elapsed


def serve(binary, event_file, table):
    event = load_event(event_file)
    api = RuntimeApi()
    threading.Thread(target=api.serve_forever, daemon=True).start()
    process = subprocess.Popen([str(binary)], env=function_env(api, table), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    statuses = {}
    started = time.perf_counter()
    for _ in range(REQUESTS):
        api.events.put(event)
        path, body = api.responses.get(timeout=30)
        status = json.loads(body).get("statusCode", "ok") if path.endswith("/response") else "error"
        statuses[status] = statuses.get(status, 0) + 1
    elapsed = time.perf_counter() - started
    with open(f"/proc/{process.pid}/status") as status_file:
        peak_kb = next(int(line.split()[1]) for line in status_file if line.startswith("VmHWM"))
    process.kill()
    process.wait()
    api.shutdown()
    return peak_kb / 1024, elapsed / REQUESTS * 1000, statuses


def tls_endpoint(directory):
    """A TLS terminator in front of DynamoDB Local with a CA made for this run: (endpoint, CA)."""
    sys.path.insert(0, str(ROOT / "tests" / "lambda"))
    from tls_terminator import TlsTerminator, make_ca_and_server_cert

    ca, cert, key = make_ca_and_server_cert(pathlib.Path(directory))
    target = urllib.parse.urlsplit(os.environ["DYNAMODB_ENDPOINT"])
    terminator = TlsTerminator(cert, key, (target.hostname, target.port))
    return f"https://localhost:{terminator.port}", ca


def main():
    table = os.environ.get("TABLE_NAME") or sys.exit("TABLE_NAME (a seeded table) is required; use infra/bench/run.sh")
    tls = tls_endpoint(tempfile.mkdtemp())
    arm64 = subprocess.run(["rustup", "target", "list", "--installed"], capture_output=True, text=True).stdout
    arm64 = "aarch64-unknown-linux-gnu" in arm64 and not os.environ.get("SKIP_ARM64")
    build(arm64=False)
    if arm64:
        build(arm64=True)
    else:
        print("arm64: target aarch64-unknown-linux-gnu not installed; sizes for x86_64 only", file=sys.stderr)
    rows = []
    for name, (event_file, what) in FUNCTIONS.items():
        x86 = out_dir(False) / name / "bootstrap"
        arm = out_dir(True) / name / "bootstrap"
        inits = [cold_init_ms(x86, table) for _ in range(STARTS)]
        firsts = [first_answer_ms(x86, table, event_file, tls) for _ in range(STARTS)]
        peak_mb, mean_ms, statuses = serve(x86, event_file, table)
        rows.append({
            "function": name,
            "arm64": sizes(arm) if arm64 else None,
            "x86_64": sizes(x86),
            "init_ms": statistics.median(inits),
            "init_range": (min(inits), max(inits)),
            "first_ms": statistics.median(firsts),
            "peak_rss_mb": peak_mb,
            "mean_ms": mean_ms,
            "statuses": statuses,
            "what": what,
        })
    hello = next(r for r in rows if r["function"] == "hello-lambda")
    mb = lambda n: f"{n / 1e6:.2f} MB"
    print("| function | arm64 bootstrap / zip | x86_64 bootstrap / zip | cold init, median of 10 (min-max) | x hello | init + first request over TLS, median of 10 | x hello | peak RSS after 1,000 requests | mean per request | requests served |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        arm = f"{mb(r['arm64'][0])} / {mb(r['arm64'][1])}" if r["arm64"] else "not built"
        ratio = r["init_ms"] / hello["init_ms"]
        first_ratio = r["first_ms"] / hello["first_ms"]
        print(
            f"| {r['function']} | {arm} | {mb(r['x86_64'][0])} / {mb(r['x86_64'][1])} | "
            f"{r['init_ms']:.1f} ms ({r['init_range'][0]:.1f}-{r['init_range'][1]:.1f}) | {ratio:.2f} | "
            f"{r['first_ms']:.1f} ms | {first_ratio:.2f} | "
            f"{r['peak_rss_mb']:.1f} MB | {r['mean_ms']:.2f} ms | {r['what']}: {r['statuses']} |"
        )


if __name__ == "__main__":
    main()
