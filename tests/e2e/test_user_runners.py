"""Today's workflow through python-gitlab: a user creates the runner first and gets a glrt- token,
the runner host verifies with it and a system_id and shows up as a manager; tokens are reset by
the user and by the runner itself."""

import gitlab
import pytest
import requests

USER = "mgmt-user-pat"  # Maintainer of group "team" (10), so of its project 100
ADMIN = "mgmt-root-pat"


def client(url, token=USER):
    gl = gitlab.Gitlab(url, private_token=token)
    gl.auth()  # `gl.user` is the authenticated user, as python-gitlab's docs call it
    return gl


@pytest.mark.parametrize(
    "token, attributes",
    [
        (ADMIN, {"runner_type": "instance_type"}),
        (ADMIN, {"runner_type": "group_type", "group_id": 10}),
        (USER, {"runner_type": "project_type", "project_id": 100}),
    ],
)
def test_create_use_update_and_delete_each_type(management_url, token, attributes):
    gl = client(management_url, token)
    created = gl.user.runners.create(
        {**attributes, "description": "made by python-gitlab", "tag_list": ["e2e", "modern"], "paused": True}
    )
    assert created.token.startswith("glrt-") and created.token_expires_at is None
    runner = gl.runners.get(created.id)
    assert (runner.runner_type, runner.description, runner.active) == (
        attributes["runner_type"],
        "made by python-gitlab",
        False,
    )
    assert sorted(runner.tag_list) == ["e2e", "modern"] and runner.contacted_at is None
    runner.description = "renamed"
    runner.save()
    assert gl.runners.get(created.id).description == "renamed"

    # The host verifies with the token and a system_id, as `gitlab-runner register --token` does.
    verified = requests.post(
        f"{management_url}/api/v4/runners/verify",
        json={"token": created.token, "system_id": "s_e2e00000001", "info": {"version": "17.5.0"}},
        timeout=10,
    )
    assert verified.status_code == 200 and verified.json()["id"] == created.id
    managers = gl.http_get(f"/runners/{created.id}/managers")
    assert [(m["system_id"], m["version"], m["status"]) for m in managers] == [("s_e2e00000001", "17.5.0", "online")]
    assert gl.runners.get(created.id).contacted_at is not None

    gl.runners.delete(created.id)
    with pytest.raises(gitlab.exceptions.GitlabGetError) as missing:
        gl.runners.get(created.id)
    assert missing.value.response_code == 404


def test_refusals_reach_python_gitlab_as_gitlabs_errors(management_url):
    with pytest.raises(gitlab.exceptions.GitlabCreateError) as refused:
        client(management_url).user.runners.create({"runner_type": "instance_type"})
    assert refused.value.response_code == 403
    assert "Insufficient permissions" in str(refused.value.error_message)
    with pytest.raises(gitlab.exceptions.GitlabCreateError) as missing:
        client(management_url).user.runners.create({"runner_type": "group_type", "group_id": 999})
    assert missing.value.response_code == 400


def test_token_resets_by_the_user_and_by_the_runner(management_url):
    gl = client(management_url)
    created = gl.user.runners.create({"runner_type": "project_type", "project_id": 100})
    reset = gl.http_post(f"/runners/{created.id}/reset_authentication_token")
    assert reset["token"].startswith("glrt-") and reset["token"] != created.token
    old = requests.post(f"{management_url}/api/v4/runners/verify", json={"token": created.token}, timeout=10)
    assert old.status_code == 403

    own = requests.post(
        f"{management_url}/api/v4/runners/reset_authentication_token", json={"token": reset["token"]}, timeout=10
    )
    assert own.status_code == 201 and own.json()["token"].startswith("glrt-")
    verified = requests.post(
        f"{management_url}/api/v4/runners/verify",
        json={"token": own.json()["token"], "system_id": "s_e2e00000002"},
        timeout=10,
    )
    assert verified.status_code == 200

    # The host leaves as `gitlab-runner unregister` does for a glrt- token; the runner stays.
    left = requests.delete(
        f"{management_url}/api/v4/runners/managers",
        json={"token": own.json()["token"], "system_id": "s_e2e00000002"},
        timeout=10,
    )
    assert left.status_code == 204
    assert gl.http_get(f"/runners/{created.id}/managers") == []
    assert gl.runners.get(created.id).id == created.id


def test_group_runners_and_registration_token_resets(management_url):
    admin = client(management_url, ADMIN)
    group_runner = admin.user.runners.create({"runner_type": "group_type", "group_id": 10, "tag_list": ["grp"]})
    listed = admin.groups.get(10, lazy=True).runners.list(get_all=True)
    assert group_runner.id in [r.id for r in listed] and 46 in [r.id for r in listed]
    assert all(r.runner_type != "project_type" for r in listed)
    tagged = admin.groups.get(10, lazy=True).runners.list(tag_list=["grp"], get_all=True)
    assert [r.id for r in tagged] == [group_runner.id]

    # go-gitlab's ResetInstanceRunnerRegistrationToken & co., through python-gitlab's raw calls.
    for path in ["/runners/reset_registration_token", "/projects/100/runners/reset_registration_token",
                 "/groups/10/runners/reset_registration_token"]:
        reset = admin.http_post(path)
        assert list(reset) == ["token"], path
        registered = requests.post(f"{management_url}/api/v4/runners", json={"token": reset["token"]}, timeout=10)
        assert registered.status_code == 201 and not registered.json()["token"].startswith("glrt-"), path
    with pytest.raises(gitlab.exceptions.GitlabHttpError) as refused:
        client(management_url).http_post("/runners/reset_registration_token")
    assert refused.value.response_code == 403
