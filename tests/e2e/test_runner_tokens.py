"""The runner-token endpoints through real clients: python-gitlab, and the raw forms other
clients send (gitlab-python-runner's repeated keys and capitalised booleans, a trailing slash)."""

import gitlab
import pytest
import requests

INSTANCE = "e2e-instance-token"
PROJECT = "e2e-project-token"


def test_python_gitlab_registers_verifies_and_deletes_a_runner(base_url):
    gl = gitlab.Gitlab(base_url)
    runner = gl.runners.create(
        {
            "token": PROJECT,
            "description": "e2e runner",
            "tag_list": ["docker", "linux"],
            "run_untagged": False,
            "info": {"name": "python-gitlab", "version": "8.6.0"},
        }
    )
    assert isinstance(runner.id, int) and runner.id > 0
    assert isinstance(runner.token, str) and len(runner.token) >= 22
    assert runner.token_expires_at is None

    gl.runners.verify(runner.token)  # raises GitlabVerifyError unless 2xx

    gl.runners.delete(token=runner.token)  # DELETE /runners?token=...
    with pytest.raises(gitlab.exceptions.GitlabVerifyError) as gone:
        gl.runners.verify(runner.token)
    assert gone.value.response_code == 403


def test_python_gitlab_sees_gitlabs_errors(base_url):
    gl = gitlab.Gitlab(base_url)
    with pytest.raises(gitlab.exceptions.GitlabCreateError) as bad_token:
        gl.runners.create({"token": "not-a-registration-token"})
    assert bad_token.value.response_code == 403
    assert bad_token.value.error_message == "403 Forbidden"

    with pytest.raises(gitlab.exceptions.GitlabCreateError) as invalid:
        gl.runners.create({"token": INSTANCE, "run_untagged": False})
    assert invalid.value.response_code == 400
    assert invalid.value.error_message == {
        "tags_list": ["can not be empty when runner is not allowed to pick untagged jobs"]
    }


def test_form_encoded_registration_with_repeated_tags_and_capitalised_false(base_url):
    # As gitlab-python-runner sends it. run_untagged=False is only valid with tags, so a 201
    # proves both the repeated keys and the capitalised boolean were understood.
    response = requests.post(
        f"{base_url}/api/v4/runners",
        data="token=e2e-instance-token&tag_list=a&tag_list=b&run_untagged=False&description=py+runner",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 201, response.text
    assert response.headers["Content-Type"] == "application/json"

    untagged = requests.post(
        f"{base_url}/api/v4/runners",
        data={"token": INSTANCE, "run_untagged": "False"},
    )
    assert untagged.status_code == 400
    assert untagged.json() == {
        "message": {"tags_list": ["can not be empty when runner is not allowed to pick untagged jobs"]}
    }

    unregister = requests.delete(f"{base_url}/api/v4/runners", data={"token": response.json()["token"]})
    assert unregister.status_code == 204
    assert unregister.content == b""


def test_trailing_slash_registers_without_a_redirect(base_url):
    response = requests.post(
        f"{base_url}/api/v4/runners/",
        json={"token": INSTANCE, "tag_list": "a,b", "info": {"name": "gitlab-runner-api"}},
        allow_redirects=False,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"id", "token", "token_expires_at"}
    verify = requests.post(f"{base_url}/api/v4/runners/verify", json={"token": body["token"]})
    assert verify.status_code == 200
    assert verify.json() == {"id": body["id"], "token": body["token"], "token_expires_at": None}


def test_missing_and_unknown_tokens(base_url):
    missing = requests.post(f"{base_url}/api/v4/runners/verify", headers={"Content-Type": "application/json"})
    assert (missing.status_code, missing.json()) == (400, {"error": "token is missing"})
    unknown = requests.delete(f"{base_url}/api/v4/runners", json={"token": "nope"})
    assert (unknown.status_code, unknown.json()) == (403, {"message": "403 Forbidden"})
