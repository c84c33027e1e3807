"""The runner management endpoints through python-gitlab and its CLI, as their users call them."""

import json
import subprocess
import sys

import gitlab
import pytest

USER = "mgmt-user-pat"
ADMIN = "mgmt-root-pat"


def client(url, token=USER):
    return gitlab.Gitlab(url, private_token=token)


def test_auth_and_version(management_url):
    gl = client(management_url)
    gl.auth()
    assert (gl.user.id, gl.user.username, gl.user.is_admin) == (2, "maintainer", False)
    version, revision = gl.version()
    assert version.startswith("12.") and revision
    with pytest.raises(gitlab.exceptions.GitlabAuthenticationError):
        client(management_url, "wrong").auth()


def test_lists_follow_links_and_see_each_runner_once(management_url):
    owned = client(management_url).runners.list(get_all=True)
    # Runner 47 belongs to team/platform/api: owned through the parent group "team".
    assert [r.id for r in owned] == list(range(1, 46)) + [47]
    first_page = client(management_url).runners.list(per_page=20, get_all=False)
    assert len(first_page) == 20
    tagged = client(management_url).runners.list(tag_list=["docker"], get_all=True)
    assert [r.id for r in tagged] == list(range(1, 46, 2))
    everything = client(management_url, ADMIN).runners.all(get_all=True)
    assert [r.id for r in everything] == list(range(1, 48))
    shared = client(management_url, ADMIN).runners_all.list(type="instance_type", get_all=True)
    assert [(r.id, r.is_shared) for r in shared] == [(46, True)]
    with pytest.raises(gitlab.exceptions.GitlabListError) as forbidden:
        client(management_url).runners.all(get_all=True)
    assert forbidden.value.response_code == 403


def test_get_save_jobs_and_delete(management_url):
    gl = client(management_url)
    runner = gl.runners.get(3)
    assert runner.description == "runner 3"
    assert runner.projects[0]["path_with_namespace"] == "team/app"
    runner.description = "renamed by python-gitlab"
    runner.tag_list = ["x", "y"]
    runner.save()
    again = gl.runners.get(3)
    assert (again.description, again.tag_list) == ("renamed by python-gitlab", ["x", "y"])

    jobs = gl.runners.get(1, lazy=True).jobs.list(status="failed", get_all=True)
    assert [j.id for j in jobs] == [501, 502]
    newest_first = gl.runners.get(1, lazy=True).jobs.list(order_by="id", sort="desc", get_all=True)
    assert [j.id for j in newest_first] == [502, 501, 500]

    gl.runners.get(45).delete()
    with pytest.raises(gitlab.exceptions.GitlabGetError) as gone:
        gl.runners.get(45)
    assert gone.value.response_code == 404
    shared = client(management_url).runners.get(46)  # anyone may read an instance runner...
    assert shared.is_shared is True
    with pytest.raises(gitlab.exceptions.GitlabListError) as no_jobs:
        shared.jobs.list()  # ...but only admins see its jobs
    assert (no_jobs.value.response_code, no_jobs.value.error_message) == (403, "403 Forbidden - No access granted")


def test_the_gitlab_cli_lists_runners(management_url, tmp_path):
    config = tmp_path / "python-gitlab.cfg"
    config.write_text(
        f"[global]\ndefault = local\n\n[local]\nurl = {management_url}\nprivate_token = {USER}\napi_version = 4\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "gitlab", "-c", str(config), "-o", "json", "runner", "list", "--get-all"],
        capture_output=True,
        text=True,
        check=True,
    )
    listed = json.loads(result.stdout)
    assert [r["id"] for r in listed][:3] == [1, 2, 3]
    assert all(set(r) >= {"id", "description", "active", "is_shared", "status", "online"} for r in listed)
