"""The runner job protocol through real clients: gitlab-runner-api 1.0.4 registers and polls (a
poll with nothing to run is its "no job", 204), and a poll alone (no verify) makes a runner
online, as python-gitlab then shows."""

import gitlab
import pytest
import requests
from gitlab_runner_api import Runner

INSTANCE = "e2e-instance-token"
ADMIN = "e2e-root-pat"


def test_gitlab_runner_api_polls_without_error(base_url):
    runner = Runner.register(base_url, INSTANCE, description="polling runner", tags=["e2e"],
                             name="e2e-box", version="1.0.4")
    assert runner.request_job() is None  # 204: nothing to run, no exception
    details = gitlab.Gitlab(base_url, private_token=ADMIN).runners.get(runner.id)
    assert (details.online, details.status, details.version) == (True, "online", "1.0.4")


def test_polling_alone_makes_a_runner_online(base_url):
    gl = gitlab.Gitlab(base_url, private_token=ADMIN)
    created = gl.runners.create({"token": INSTANCE, "description": "never verified"})
    assert gl.runners.get(created.id).online is None  # registered, never contacted
    polled = requests.post(f"{base_url}/api/v4/jobs/request",
                           json={"token": created.token, "info": {"version": "17.5.0"}})
    assert (polled.status_code, polled.content) == (204, b"")
    details = gl.runners.get(created.id)
    assert (details.online, details.status, details.version) == (True, "online", "17.5.0")


def test_a_poll_with_a_bad_token_is_403_and_without_one_400(base_url):
    refused = requests.post(f"{base_url}/api/v4/jobs/request", json={"token": "nope"})
    assert (refused.status_code, refused.json()) == (403, {"message": "403 Forbidden"})
    missing = requests.post(f"{base_url}/api/v4/jobs/request", json={})
    assert (missing.status_code, missing.json()) == (400, {"error": "token is missing"})


def test_token_resets_through_python_gitlab(base_url):
    gl = gitlab.Gitlab(base_url, private_token=ADMIN)
    created = gl.runners.create({"token": INSTANCE, "description": "rotating"})
    reset = gl.http_post(f"/runners/{created.id}/reset_authentication_token")
    assert set(reset) == {"token", "token_expires_at"} and reset["token"] != created.token
    with pytest.raises(gitlab.exceptions.GitlabVerifyError):
        gl.runners.verify(created.token)
    own = gl.http_post("/runners/reset_authentication_token", post_data={"token": reset["token"]})
    gl.runners.verify(own["token"])
    with pytest.raises(gitlab.exceptions.GitlabVerifyError):
        gl.runners.verify(reset["token"])
