"""Every route of every function, through the Lambda runtime, with the events API Gateway sends:
a base64-encoded form body, a DELETE with a JSON body, a %2F-encoded project path, a trailing
slash in rawPath (under the route without it), `sourceIp`, cookies and comma-joined
multi-value headers. (The API uses the `$default` stage, so no stage prefix reaches the
functions.)"""

import base64
import json

from conftest import EVENTS


def body(answer):
    text = answer.get("body") or ""
    if answer.get("isBase64Encoded"):
        text = base64.b64decode(text).decode()
    return json.loads(text) if text else None


def header(answer, name):
    return {k.lower(): v for k, v in (answer.get("headers") or {}).items()}.get(name)


def call(emulator, function, event, status):
    answer = emulator.invoke(function, EVENTS / function / event)
    assert answer["statusCode"] == status, f"{function}/{event}: {answer}"
    if status != 204:
        assert header(answer, "content-type") == "application/json", answer
    return answer


def test_runner_token_function(emulator, tmp_path):
    registered = body(call(emulator, "runner-token", "register-form-base64.json", 201))
    assert set(registered) == {"id", "token", "token_expires_at"}
    # The gateway's sourceIp became the runner's ip_address; the form's repeated keys its tags.
    get = json.loads((EVENTS / "runner-management" / "get.json").read_text())
    get["rawPath"] = get["requestContext"]["http"]["path"] = f"/api/v4/runners/{registered['id']}"
    details = body(emulator.invoke_json("runner-management", get, tmp_path))
    assert (details["ip_address"], details["tag_list"], details["run_untagged"]) == ("203.0.113.7", ["a", "b"], False)
    assert details["name"] == "py"

    slash = body(call(emulator, "runner-token", "register-trailing-slash.json", 201))
    assert slash["id"] > registered["id"]
    verified = body(call(emulator, "runner-token", "verify.json", 200))
    assert (verified["id"], verified["token"]) == (10, "mgmt-runner-10")
    gone = call(emulator, "runner-token", "unregister-json-body.json", 204)
    assert not gone.get("body")
    again = call(emulator, "runner-token", "unregister-json-body.json", 403)
    assert body(again) == {"message": "403 Forbidden"}


def test_runner_management_function(emulator):
    owned = call(emulator, "runner-management", "list-owned.json", 200)
    assert [r["id"] for r in body(owned)] == [6, 7, 8, 9, 10]
    assert header(owned, "x-page") == "2" and header(owned, "x-next-page") == "3"
    assert "<https://abc123.execute-api.us-east-1.amazonaws.com/api/v4/runners?page=3&per_page=5>; rel=\"next\"" in header(owned, "link")
    shared = body(call(emulator, "runner-management", "list-all.json", 200))
    assert shared[0]["id"] == 46 and all(r["is_shared"] for r in shared)
    assert body(call(emulator, "runner-management", "get.json", 200))["id"] == 10
    updated = body(call(emulator, "runner-management", "update.json", 200))
    assert (updated["description"], updated["tag_list"]) == ("set through Lambda", ["lambda"])
    jobs = body(call(emulator, "runner-management", "jobs.json", 200))
    assert [j["id"] for j in jobs] == [501, 502]
    assert body(call(emulator, "runner-management", "user.json", 200))["username"] == "maintainer"
    assert body(call(emulator, "runner-management", "version.json", 200))["version"].startswith("12.")
    call(emulator, "runner-management", "delete.json", 204)
    call(emulator, "runner-management", "delete.json", 404)
    created = body(call(emulator, "runner-management", "create-runner.json", 201))
    assert created["token"].startswith("glrt-") and created["id"] > 0


def test_project_runners_function(emulator):
    def own(listed):
        return [r["id"] for r in listed if not r["is_shared"]]

    listed = body(call(emulator, "project-runners", "list-by-path.json", 200))
    assert own(listed) == [47] and 46 in [r["id"] for r in listed]  # its runner, and the instance's
    enabled = body(call(emulator, "project-runners", "enable.json", 201))
    assert enabled["id"] == 12
    assert own(body(call(emulator, "project-runners", "list-by-path.json", 200))) == [12, 47]
    call(emulator, "project-runners", "disable.json", 204)
    call(emulator, "project-runners", "disable.json", 404)


def test_runner_jobs_function(emulator, tmp_path):
    polled = call(emulator, "runner-jobs", "request.json", 204)
    assert not polled.get("body")
    # The poll was a heartbeat: the runner is online, at the gateway's sourceIp.
    get = json.loads((EVENTS / "runner-management" / "get.json").read_text())
    get["rawPath"] = get["requestContext"]["http"]["path"] = "/api/v4/runners/11"
    details = body(emulator.invoke_json("runner-management", get, tmp_path))
    assert (details["online"], details["ip_address"], details["version"]) == (True, "198.51.100.33", "17.5.0")


def with_job(event_name, job_id, token="", folder="runner-jobs"):
    text = (EVENTS / folder / event_name).read_text()
    return json.loads(text.replace("JOB_ID", str(job_id)).replace("JOB_TOKEN", token))


def test_project_jobs_function_enqueues_for_the_runner_jobs_function(emulator, tmp_path):
    created = body(call(emulator, "project-jobs", "enqueue.json", 201))
    assert (created["status"], created["name"]) == ("pending", "lambda job")
    taken = body(call(emulator, "runner-jobs", "request-project-runner.json", 201))
    assert taken["id"] == created["id"]
    assert taken["job_info"]["project_id"] == 101
    assert {"key": "GIT_STRATEGY", "value": "none", "public": True, "masked": False} in taken["variables"]

    # The runner logs through API Gateway's base64 body (non-UTF-8 bytes kept), then succeeds.
    patched = emulator.invoke_json("runner-jobs", with_job("append-trace-base64.json", taken["id"], taken["token"]), tmp_path)
    assert patched["statusCode"] == 202, patched
    assert (header(patched, "range"), header(patched, "job-status")) == ("0-16", "running")
    done = emulator.invoke_json("runner-jobs", with_job("update-success.json", taken["id"], taken["token"]), tmp_path)
    assert done["statusCode"] == 200, done
    again = emulator.invoke_json("runner-jobs", with_job("update-success.json", taken["id"], taken["token"]), tmp_path)
    assert (again["statusCode"], header(again, "job-status")) == (403, "success")
    # The users' side reads the finished job and its log back, bytes as the runner sent them.
    shown = emulator.invoke_json("project-jobs", with_job("get-job.json", taken["id"], folder="project-jobs"), tmp_path)
    assert (shown["statusCode"], body(shown)["status"]) == (200, "success")
    log = emulator.invoke_json("project-jobs", with_job("trace.json", taken["id"], folder="project-jobs"), tmp_path)
    # Not UTF-8, so not text/plain: a text type would be decoded (lossily) on the way out.
    assert (log["statusCode"], header(log, "content-type")) == (200, "application/octet-stream")
    assert log["isBase64Encoded"] and base64.b64decode(log["body"]) == b"hello \xff\xfe lambda\n"
    listed = body(call(emulator, "project-jobs", "list.json", 200))
    assert [j["id"] for j in listed] == [taken["id"]]
    retried = emulator.invoke_json("project-jobs", with_job("retry.json", taken["id"], folder="project-jobs"), tmp_path)
    assert retried["statusCode"] == 201 and body(retried)["id"] > taken["id"]
    canceled = emulator.invoke_json("project-jobs", with_job("cancel.json", body(retried)["id"], folder="project-jobs"), tmp_path)
    assert (canceled["statusCode"], body(canceled)["status"]) == (201, "canceled")


def test_sweeper_function_on_its_schedule_event(emulator, tmp_path):
    # A fresh pending job is active but not stuck: examined, left as it is.
    pending = body(call(emulator, "project-jobs", "enqueue.json", 201))
    report = emulator.invoke("sweeper", EVENTS.parent / "scheduled" / "sweeper.json")
    assert set(report) == {"examined", "failed_running", "failed_pending", "left_alone", "listing_outboxes_applied"}
    assert report["examined"] >= 1 and report["failed_running"] == report["failed_pending"] == 0
    get = with_job("get-job.json", pending["id"], folder="project-jobs")
    assert body(emulator.invoke_json("project-jobs", get, tmp_path))["status"] == "pending"


def test_token_rotation_on_lambda(emulator):
    own = body(call(emulator, "runner-token", "reset-own-token.json", 201))
    assert set(own) == {"token", "token_expires_at"} and own["token"] != "mgmt-runner-13"
    call(emulator, "runner-token", "reset-own-token.json", 403)  # the old token is gone
    by_id = body(call(emulator, "runner-management", "reset-token.json", 201))
    assert len(by_id["token"]) >= 32


def test_runner_managers_on_lambda(emulator):
    verified = body(call(emulator, "runner-token", "verify-with-system-id.json", 200))
    assert verified["id"] == 15
    listed = body(call(emulator, "runner-management", "managers.json", 200))
    assert [(m["system_id"], m["version"], m["ip_address"]) for m in listed] == [
        ("s_lambda0000001", "17.0.0", "198.51.100.20")
    ]
    call(emulator, "runner-token", "unregister-manager.json", 204)
    assert body(call(emulator, "runner-management", "managers.json", 200)) == []
    gone = body(call(emulator, "runner-token", "unregister-manager.json", 404))
    assert gone == {"message": "404 Runner manager not found Not Found"}


def test_groups_and_registration_tokens_on_lambda(emulator):
    group = body(call(emulator, "project-runners", "list-group.json", 200))
    assert 46 in [r["id"] for r in group] and all(r["runner_type"] != "project_type" for r in group)
    for function, event in [
        ("runner-management", "reset-registration-token.json"),
        ("project-runners", "reset-registration-token.json"),
        ("project-runners", "reset-group-registration-token.json"),
    ]:
        reset = body(call(emulator, function, event, 201))
        assert list(reset) == ["token"] and len(reset["token"]) >= 32
