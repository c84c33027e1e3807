"""A project's runners through python-gitlab, with the project by id and by full path."""

import gitlab
import pytest

USER = "mgmt-user-pat"


def test_list_enable_and_disable_project_runners(management_url):
    gl = gitlab.Gitlab(management_url, private_token=USER)
    by_path = gl.projects.get("team/platform/api", lazy=True)
    assert [r.id for r in by_path.runners.list(get_all=True)] == [46, 47]  # shared + its own

    enabled = by_path.runners.create({"runner_id": 2})
    assert (enabled.id, enabled.is_shared) == (2, False)
    assert [r.id for r in by_path.runners.list(get_all=True)] == [2, 46, 47]
    assert [r.id for r in gl.projects.get(101, lazy=True).runners.list(scope="specific", get_all=True)] == [2, 47]

    with pytest.raises(gitlab.exceptions.GitlabCreateError) as twice:
        by_path.runners.create({"runner_id": 2})
    assert twice.value.response_code == 400

    by_path.runners.delete(2)
    assert [r.id for r in by_path.runners.list(get_all=True)] == [46, 47]
    with pytest.raises(gitlab.exceptions.GitlabDeleteError) as last:
        by_path.runners.delete(47)
    assert last.value.response_code == 403
    assert "Only one project associated with the runner" in str(last.value.error_message)

    with pytest.raises(gitlab.exceptions.GitlabListError) as unknown:
        gl.projects.get("team/nothing", lazy=True).runners.list()
    assert unknown.value.response_code == 404
