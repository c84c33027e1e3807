"""The functions trust Amazon's root CAs, compiled in, and nothing else unless `AWS_CA_BUNDLE`
names more: a DynamoDB endpoint behind a TLS terminator with a private CA works exactly when its
CA is named."""

import urllib.parse

import pytest

from conftest import EVENTS, Emulator, Watch, required_environment, seeded_table
from tls_terminator import TlsTerminator, make_ca_and_server_cert


@pytest.fixture(scope="module")
def private_endpoint(tmp_path_factory):
    endpoint, runnerctl = required_environment()
    ca, cert, key = make_ca_and_server_cert(tmp_path_factory.mktemp("ca"))
    target = urllib.parse.urlsplit(endpoint)
    terminator = TlsTerminator(cert, key, (target.hostname, target.port))
    table = seeded_table(runnerctl)
    tls_endpoint = f"https://localhost:{terminator.port}"
    trusting = Watch(runnerctl, tls_endpoint, table, [f"AWS_CA_BUNDLE={ca}"], "lambda-watch-ca.log")
    default = Watch(runnerctl, tls_endpoint, table, [], "lambda-watch-no-ca.log")
    yield Emulator(trusting.port), Emulator(default.port), terminator
    for watch in (trusting, default):
        watch.stop()
    terminator.close()


def test_a_private_ca_named_in_aws_ca_bundle_is_trusted(private_endpoint):
    trusting, _, terminator = private_endpoint
    answer = trusting.invoke("runner-management", EVENTS / "runner-management" / "get.json")
    assert answer["statusCode"] == 200, answer
    assert terminator.handshakes >= 1


def test_without_it_the_endpoint_is_refused_fast_with_a_503(private_endpoint):
    _, default, _ = private_endpoint
    answer = default.invoke("runner-management", EVENTS / "runner-management" / "get.json")
    assert answer["statusCode"] == 503, answer
    assert "503" in answer["body"]
