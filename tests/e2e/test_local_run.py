"""The README's run command: `runnerctl serve` with no DynamoDB endpoint starts the bundled
DynamoDB Local itself and prints a registration token that works."""

import os

import gitlab

from conftest import Server


def test_serve_without_an_endpoint_embeds_dynamodb_local_and_prints_tokens():
    env = {k: v for k, v in os.environ.items() if k not in ("DYNAMODB_ENDPOINT", "AWS_ENDPOINT_URL_DYNAMODB")}
    server = Server(env)
    try:
        registration_token = server.printed("Instance registration token:")
        admin_token = server.printed("Admin personal access token (user root):")
        assert registration_token and admin_token, server.banner
        runner = gitlab.Gitlab(server.url).runners.create({"token": registration_token})
        assert runner.id == 1
        gitlab.Gitlab(server.url).runners.verify(runner.token)
    finally:
        server.stop()
    assert server.process.returncode is not None
