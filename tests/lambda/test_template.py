"""template.yaml against what the functions and the event fixtures expect: the routes an HTTP
API can really take, throttling only on routes that exist, and an event fixture for every route,
addressed to the function the template sends that route to. No emulator needed."""

import json
import pathlib

from samtranslator.yaml_helper import yaml_parse  # installed with aws-sam-cli

ROOT = pathlib.Path(__file__).resolve().parents[2]
EVENTS = pathlib.Path(__file__).resolve().parent / "events"
# Event fixture folders are named after the function binaries.
FUNCTION_OF_FOLDER = {
    "runner-token": "RunnerTokenFunction",
    "runner-management": "RunnerManagementFunction",
    "project-runners": "ProjectRunnersFunction",
    "runner-jobs": "RunnerJobsFunction",
    "project-jobs": "ProjectJobsFunction",
}


def template():
    return yaml_parse((ROOT / "template.yaml").read_text())


def routes():
    """{"METHOD /path": function logical id} from the functions' HttpApi events."""
    found = {}
    for name, resource in template()["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        for event in resource["Properties"].get("Events", {}).values():
            if event["Type"] == "HttpApi":
                key = f"{event['Properties']['Method']} {event['Properties']['Path']}"
                assert key not in found, f"{key} is declared twice"
                found[key] = name
    return found


def test_no_route_ends_with_a_slash():
    # HTTP APIs do not take such routes; the functions strip a trailing slash themselves.
    assert [key for key in routes() if key.endswith("/")] == []


def test_throttling_names_only_declared_routes():
    api = template()["Resources"]["Api"]["Properties"]
    settings = api.get("RouteSettings", {})
    assert "POST /api/v4/runners" in settings, "registration must have its stricter limit"
    assert set(settings) <= set(routes())
    registration = settings["POST /api/v4/runners"]
    default = api["DefaultRouteSettings"]
    assert registration["ThrottlingRateLimit"] < default["ThrottlingRateLimit"]
    assert registration["ThrottlingBurstLimit"] < default["ThrottlingBurstLimit"]
    # Every runner polls for jobs every few seconds: that route needs more than the default.
    polling = settings["POST /api/v4/jobs/request"]
    assert polling["ThrottlingRateLimit"] > default["ThrottlingRateLimit"]


def test_every_route_has_an_event_for_its_function():
    declared = routes()
    covered = {}
    for path in sorted(EVENTS.glob("*/*.json")):
        event = json.loads(path.read_text())
        key = event["routeKey"]
        assert event["requestContext"]["routeKey"] == key, path.name
        assert key in declared, f"{path.relative_to(EVENTS)}: {key} is not a route of template.yaml"
        assert declared[key] == FUNCTION_OF_FOLDER[path.parent.name], (
            f"{path.relative_to(EVENTS)}: template.yaml sends {key} to {declared[key]}"
        )
        covered.setdefault(key, path.name)
    assert sorted(set(declared) - set(covered)) == []


def test_a_stalled_database_is_answered_before_lambda_kills_the_function():
    function = template()["Globals"]["Function"]
    env = {k: int(v) for k, v in function["Environment"]["Variables"].items() if k.endswith("_MS")}
    assert env["DYNAMODB_CONNECT_TIMEOUT_MS"] <= env["DYNAMODB_ATTEMPT_TIMEOUT_MS"]
    assert env["DYNAMODB_ATTEMPT_TIMEOUT_MS"] < env["DYNAMODB_OPERATION_TIMEOUT_MS"]
    assert env["DYNAMODB_OPERATION_TIMEOUT_MS"] < env["REQUEST_DEADLINE_MS"]
    assert env["REQUEST_DEADLINE_MS"] < function["Timeout"] * 1000


def test_the_sweeper_runs_on_a_schedule():
    sweeper = template()["Resources"]["SweeperFunction"]["Properties"]
    schedules = [e for e in sweeper["Events"].values() if e["Type"] == "Schedule"]
    assert [e["Properties"]["Schedule"] for e in schedules] == ["rate(5 minutes)"]
