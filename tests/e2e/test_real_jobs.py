"""Runners really run jobs, end to end against `runnerctl serve`: gitlab-python-runner 14.3.20
(shell executor, `--once`) clones a local git repository and runs an enqueued job; gitlab-runner-api
1.0.4 takes a job, logs in chunks (its second append always goes out at a wrong offset: the 416 and
its full-log PUT resync must leave a correct log) and reports success; python-gitlab reads the
jobs and logs back."""

import json
import os
import pathlib
import subprocess
import sys
import uuid

import gitlab
import pytest
import requests
from gitlab_runner_api import Runner

from conftest import Server, runnerctl

PY_RUNNER_TAG = "new-python-runner-vm"  # what gitlab-python-runner registers with by default


def run(args, env, cwd=None):
    done = subprocess.run(args, env=env, cwd=cwd, check=True, capture_output=True, text=True)
    return done.stdout


@pytest.fixture(scope="module")
def world(endpoint, tmp_path_factory):
    """A fresh table with an admin, a group and a project whose repository is a local git repo."""
    root = tmp_path_factory.mktemp("jobs")
    repo = root / "repo"
    git_env = dict(os.environ, GIT_AUTHOR_NAME="e2e", GIT_AUTHOR_EMAIL="e2e@example.com",
                   GIT_COMMITTER_NAME="e2e", GIT_COMMITTER_EMAIL="e2e@example.com")
    run(["git", "init", "-q", "-b", "main", str(repo)], git_env)
    (repo / "README").write_text("a repository for runner jobs\n")
    run(["git", "add", "README"], git_env, cwd=repo)
    run(["git", "commit", "-q", "-m", "init"], git_env, cwd=repo)
    env = dict(os.environ, TABLE_NAME=f"e2e-jobs-{uuid.uuid4().hex[:12]}", DYNAMODB_ENDPOINT=endpoint)
    run([runnerctl(), "table", "create"], env)
    admin = json.loads(run([runnerctl(), "--json", "user", "create", "root", "--admin"], env))["token"]
    run([runnerctl(), "group", "create", "ci"], env)
    project = json.loads(run([runnerctl(), "--json", "project", "create", "app", "--namespace", "ci",
                              "--repository-url", str(repo)], env))
    server = Server(env)
    yield {"url": server.url, "admin": admin, "project": project, "root": root}
    server.stop()


def enqueue(world, **job):
    gl = gitlab.Gitlab(world["url"], private_token=world["admin"])
    return gl.http_post(f"/projects/{world['project']['id']}/jobs", post_data=job)


def test_gitlab_python_runner_runs_an_enqueued_job(world):
    workdir = world["root"] / "python-runner"
    workdir.mkdir()
    runner_bin = str(pathlib.Path(sys.executable).with_name("gitlab-runner.py"))
    run([runner_bin, "--register", world["url"], "--regtoken", world["project"]["runners_token"],
         "--type", "shell", "--desc", "e2e python runner"], dict(os.environ), cwd=workdir)
    good = enqueue(world, name="hello", script=["echo hello from the job", "test -f README"],
                   tag_list=[PY_RUNNER_TAG], ref="main")
    ran = subprocess.run([runner_bin, "--start", "gitlab-runner.yml", "--once"], cwd=workdir,
                         capture_output=True, text=True, timeout=180)
    assert ran.returncode == 0, ran.stdout + ran.stderr

    gl = gitlab.Gitlab(world["url"], private_token=world["admin"])
    project = gl.projects.get(world["project"]["id"], lazy=True)
    job = project.jobs.get(good["id"])
    assert job.status == "success"
    log = job.trace().decode()
    assert "hello from the job" in log
    runners = gl.runners.all(get_all=True)
    (runner,) = [r for r in runners if r.description == "e2e python runner"]
    assert gl.runners.get(runner.id).online is True
    listed = gl.runners.get(runner.id).jobs.list(get_all=True)
    assert good["id"] in [j.id for j in listed]

    bad = enqueue(world, name="broken", script=["echo about to fail", "exit 3"],
                  tag_list=[PY_RUNNER_TAG], ref="main")
    ran = subprocess.run([runner_bin, "--start", "gitlab-runner.yml", "--once"], cwd=workdir,
                         capture_output=True, text=True, timeout=180)
    failed = project.jobs.get(bad["id"])
    assert failed.status == "failed", ran.stdout + ran.stderr
    assert failed.failure_reason == "unknown_failure"  # this runner sends no reason
    assert "about to fail" in project.jobs.get(bad["id"]).trace().decode()


def test_gitlab_runner_api_logs_in_chunks_and_succeeds(world):
    runner = Runner.register(world["url"], world["project"]["runners_token"],
                             description="e2e library runner", tags=["lib"], run_untagged=False)
    created = enqueue(world, name="library job", script=["true"], tag_list=["lib"], ref="dev")
    job = runner.request_job()
    assert job is not None and job.id == created["id"]
    job.log += "first line\n"
    job.log += "second line\n"  # goes out at a wrong offset: 416, then the full-log PUT
    job.log += "third line\n"
    job.set_success()

    gl = gitlab.Gitlab(world["url"], private_token=world["admin"])
    got = gl.projects.get(world["project"]["id"], lazy=True).jobs.get(created["id"])
    assert got.status == "success"
    log = got.trace().decode()
    assert log.count("first line") == 1 and log.count("second line") == 1
    assert log.endswith("third line\n"), log
    assert runner.request_job() is None


def test_a_finished_job_refuses_further_writes_with_its_status(world):
    runner = Runner.register(world["url"], world["project"]["runners_token"],
                             description="e2e refusals", tags=["refusals"], run_untagged=False)
    enqueue(world, name="short", script=["true"], tag_list=["refusals"], ref="dev")
    job = runner.request_job()
    job.set_success()
    put = requests.put(f"{world['url']}/api/v4/jobs/{job.id}", json={"token": job.token, "state": "failed"})
    assert (put.status_code, put.headers.get("Job-Status")) == (403, "success")
    patch = requests.patch(f"{world['url']}/api/v4/jobs/{job.id}/trace", data=b"late",
                           headers={"JOB-TOKEN": job.token, "Content-Range": "0-3"})
    assert (patch.status_code, patch.headers.get("Job-Status")) == (403, "success")


def test_python_gitlab_lists_cancels_and_retries_jobs(world):
    gl = gitlab.Gitlab(world["url"], private_token=world["admin"])
    project = gl.projects.get(world["project"]["id"], lazy=True)
    waiting = enqueue(world, name="to cancel", script=["true"], tag_list=["nobody-has-this"], ref="dev")
    pending_ids = [j.id for j in project.jobs.list(scope="pending", get_all=True)]
    assert waiting["id"] in pending_ids
    job = project.jobs.get(waiting["id"])
    assert job.cancel()["status"] == "canceled"
    assert project.jobs.get(waiting["id"]).status == "canceled"
    assert waiting["id"] in [j.id for j in project.jobs.list(scope=["canceled", "failed"], get_all=True)]
    retried = job.retry()
    assert retried["id"] > waiting["id"] and retried["status"] == "pending"
    newest = project.jobs.list(per_page=1, get_all=False)
    assert newest[0].id == retried["id"]
    with pytest.raises(gitlab.exceptions.GitlabJobRetryError) as refused:
        project.jobs.get(retried["id"]).retry()
    assert refused.value.response_code == 403
