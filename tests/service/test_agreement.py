"""Agreement figures match hand-computed Cohen's kappa and Krippendorff's alpha."""

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Keys
from tests.service.helpers import import_rows, make_project
from tests.service.labeling import by_prompt, label_all

PROMPTS = [f"q{n}" for n in range(6)]


def _pairwise_project(client: TestClient, keys: Keys, overlap: int) -> int:
    project_id = make_project(client, keys, overlap=overlap)
    rows = [{"prompt": p, "responses": [f"{p}-x", f"{p}-y"]} for p in PROMPTS]
    assert import_rows(client, keys, project_id, rows).status_code == 201
    return project_id


def _agreement(client: TestClient, keys: Keys, project_id: int) -> dict:
    response = client.get(f"/v1/projects/{project_id}/agreement", headers=Keys.auth(keys.operator))
    assert response.status_code == 200
    return response.json()


def test_two_annotators_get_cohens_kappa(client: TestClient, keys: Keys) -> None:
    project_id = _pairwise_project(client, keys, overlap=2)
    first = dict(zip(PROMPTS, ["x", "x", "x", "y", "y", "y"], strict=True))
    second = dict(zip(PROMPTS, ["x", "x", "y", "y", "y", "x"], strict=True))
    label_all(
        client, keys.annotator, project_id, by_prompt({p: f"{p}-{c}" for p, c in first.items()})
    )
    label_all(
        client, keys.annotator2, project_id, by_prompt({p: f"{p}-{c}" for p, c in second.items()})
    )
    report = _agreement(client, keys, project_id)
    # Observed 4/6 agree; both pick x half the time, so chance is 1/2: kappa = (2/3-1/2)/(1/2).
    assert report["cohen_kappa"] == pytest.approx((2 / 3 - 1 / 2) / (1 / 2))
    assert (report["n_annotators"], report["n_labels"], report["n_units_multi"]) == (2, 12, 6)
    assert [a["agreement_with_majority"] for a in report["annotators"]] == pytest.approx(
        [4 / 6] * 2
    )


def test_three_annotators_get_krippendorffs_alpha_and_majority_agreement(
    client: TestClient, keys: Keys
) -> None:
    project_id = _pairwise_project(client, keys, overlap=3)
    votes = {
        keys.annotator: ["x", "x", "y", "y", "x", "y"],
        keys.annotator2: ["x", "x", "y", "y", "x", "x"],
        keys.annotator3: ["x", "y", "y", "y", "x", "y"],
    }
    for key, picks in votes.items():
        label_all(
            client,
            key,
            project_id,
            by_prompt({p: f"{p}-{c}" for p, c in zip(PROMPTS, picks, strict=True)}),
        )
    report = _agreement(client, keys, project_id)
    # Nominal alpha by hand: 18 values, x=9, y=9; disagreeing ordered pairs within units:
    # units 2 and 6 each have one dissenter -> 2 x-y pairs each, x2 orders, /(3-1) = 2 per unit.
    d_o = (2 + 2) / 18
    d_e = 2 * 9 * 9 / (18 * 17)
    assert abs(report["krippendorff_alpha"] - (1 - d_o / d_e)) < 1e-9
    assert report["cohen_kappa"] is None
    assert len(report["pairwise_kappa"]) == 3
    shares = {a["annotator"]: a["agreement_with_majority"] for a in report["annotators"]}
    # Each is compared with the other two; units where those two split are not counted.
    assert shares == pytest.approx({"annotator": 1.0, "annotator2": 4 / 5, "annotator3": 4 / 5})


def test_agreement_of_a_project_without_labels_is_empty_not_an_error(
    client: TestClient, keys: Keys
) -> None:
    project_id = _pairwise_project(client, keys, overlap=1)
    report = _agreement(client, keys, project_id)
    assert (report["n_labels"], report["cohen_kappa"], report["krippendorff_alpha"]) == (
        0,
        None,
        None,
    )


def test_imported_labels_do_not_count_as_annotators(client: TestClient, keys: Keys) -> None:
    project_id = make_project(client, keys)
    rows = [{"prompt": "p", "chosen": "a", "rejected": "b"}]
    import_rows(client, keys, project_id, rows, fmt="trl-preference")
    assert _agreement(client, keys, project_id)["n_labels"] == 0
