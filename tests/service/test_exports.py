"""Exports give TRL-ready rows: majority pairs, C(K,2) pairs from rankings, KTO rows; filtered."""

import datetime as dt
import io
from pathlib import Path

import datasets
import orjson
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from tests.conftest import HH_SAMPLE, Keys, TinyModels
from tests.service.helpers import import_rows, make_project
from tests.service.labeling import by_prompt, label_all
from tests.support.tiny_models import prepare_with_trl


def _export(
    client: TestClient, keys: Keys, project_id: int, **params: object
) -> tuple[list[dict], dict]:
    response = client.get(
        f"/v1/projects/{project_id}/export", params=params, headers=Keys.auth(keys.operator)
    )
    assert response.status_code == 200, response.text
    rows = [orjson.loads(line) for line in response.content.splitlines()]
    return rows, dict(response.headers)


def _pairs_project(client: TestClient, keys: Keys, prompts: list[str], overlap: int = 1) -> int:
    project_id = make_project(client, keys, overlap=overlap)
    rows = [{"prompt": p, "responses": [f"{p}-good", f"{p}-bad"]} for p in prompts]
    assert import_rows(client, keys, project_id, rows).status_code == 201
    return project_id


def test_pairwise_majority_becomes_one_dpo_row_with_its_agreement(
    client: TestClient, keys: Keys
) -> None:
    project_id = _pairs_project(client, keys, ["q"], overlap=3)
    for key, pick in [
        (keys.annotator, "good"),
        (keys.annotator2, "good"),
        (keys.annotator3, "bad"),
    ]:
        label_all(client, key, project_id, by_prompt({"q": f"q-{pick}"}))
    rows, headers = _export(client, keys, project_id)
    assert len(rows) == 1
    assert {k: rows[0][k] for k in ("prompt", "chosen", "rejected", "n_votes", "source")} == {
        "prompt": "q",
        "chosen": "q-good",
        "rejected": "q-bad",
        "n_votes": 3,
        "source": "human",
    }
    assert rows[0]["agreement"] == pytest.approx(2 / 3)
    assert headers["x-arbiter-rows"] == "1"


def test_aggregate_none_gives_one_row_per_vote(client: TestClient, keys: Keys) -> None:
    project_id = _pairs_project(client, keys, ["q"], overlap=2)
    label_all(client, keys.annotator, project_id, by_prompt({"q": "q-good"}))
    label_all(client, keys.annotator2, project_id, by_prompt({"q": "q-bad"}))
    rows, _ = _export(client, keys, project_id, aggregate="none")
    assert sorted(r["chosen"] for r in rows) == ["q-bad", "q-good"]
    majority, headers = _export(client, keys, project_id)
    assert majority == []
    assert headers["x-arbiter-ties-skipped"] == "1"


def test_ties_are_left_out_and_counted(client: TestClient, keys: Keys) -> None:
    project_id = _pairs_project(client, keys, ["q1", "q2"])
    label_all(client, keys.annotator, project_id, by_prompt({"q1": "tie", "q2": "q2-good"}))
    rows, headers = _export(client, keys, project_id)
    assert [r["prompt"] for r in rows] == ["q2"]
    assert headers["x-arbiter-ties-skipped"] == "1"


def test_a_ranking_of_four_gives_six_pairs_and_tied_pairs_are_skipped(
    client: TestClient, keys: Keys
) -> None:
    project_id = make_project(client, keys, "listwise")
    import_rows(client, keys, project_id, [{"prompt": "q", "responses": ["w", "x", "y", "z"]}])

    def rank(assignment: dict) -> dict:
        ids = {r["text"]: r["id"] for r in assignment["item"]["responses"]}
        return {"kind": "listwise", "ranking": [ids["z"], [ids["x"], ids["y"]], ids["w"]]}

    label_all(client, keys.annotator, project_id, rank)
    rows, headers = _export(client, keys, project_id)
    assert sorted((r["chosen"], r["rejected"]) for r in rows) == [
        ("x", "w"),
        ("y", "w"),
        ("z", "w"),
        ("z", "x"),
        ("z", "y"),
    ]
    assert headers["x-arbiter-ties-skipped"] == "1"


def test_binary_labels_export_as_kto_rows(client: TestClient, keys: Keys) -> None:
    project_id = make_project(client, keys, "binary")
    import_rows(
        client,
        keys,
        project_id,
        [{"prompt": "q", "responses": ["fine"]}, {"prompt": "q", "responses": ["rude"]}],
    )
    label_all(
        client,
        keys.annotator,
        project_id,
        lambda a: {
            "kind": "binary",
            "rating": "up" if a["item"]["responses"][0]["text"] == "fine" else "down",
        },
    )
    rows, _ = _export(client, keys, project_id, format="kto")
    assert sorted((r["completion"], r["label"]) for r in rows) == [("fine", True), ("rude", False)]


def test_sft_export_keeps_the_responses_that_won(client: TestClient, keys: Keys) -> None:
    project_id = _pairs_project(client, keys, ["q1", "q2"])
    label_all(client, keys.annotator, project_id, by_prompt({"q1": "q1-good", "q2": "q2-bad"}))
    rows, _ = _export(client, keys, project_id, format="sft")
    assert sorted((r["prompt"], r["completion"]) for r in rows) == [
        ("q1", "q1-good"),
        ("q2", "q2-bad"),
    ]


def test_min_agreement_filters_contested_pairs(client: TestClient, keys: Keys) -> None:
    project_id = _pairs_project(client, keys, ["calm", "contested"], overlap=3)
    for key, contested in [
        (keys.annotator, "good"),
        (keys.annotator2, "good"),
        (keys.annotator3, "bad"),
    ]:
        label_all(
            client,
            key,
            project_id,
            by_prompt({"calm": "calm-good", "contested": f"contested-{contested}"}),
        )
    rows, headers = _export(client, keys, project_id, min_agreement=0.9)
    assert [r["prompt"] for r in rows] == ["calm"]
    assert headers["x-arbiter-below-agreement-skipped"] == "1"


def test_imported_labels_can_be_left_out(client: TestClient, keys: Keys) -> None:
    project_id = make_project(client, keys)
    import_rows(
        client,
        keys,
        project_id,
        [{"prompt": "p", "chosen": "a", "rejected": "b"}],
        fmt="trl-preference",
    )
    assert len(_export(client, keys, project_id)[0]) == 1
    assert _export(client, keys, project_id, include_imported="false")[0] == []


def test_date_filters_select_labels_by_creation_time(client: TestClient, keys: Keys) -> None:
    project_id = _pairs_project(client, keys, ["q"])
    label_all(client, keys.annotator, project_id, by_prompt({"q": "q-good"}))
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
    assert len(_export(client, keys, project_id, created_before=future)[0]) == 1
    assert _export(client, keys, project_id, created_after=future)[0] == []


def test_a_format_that_does_not_fit_the_project_is_a_422_naming_it(
    client: TestClient, keys: Keys
) -> None:
    project_id = _pairs_project(client, keys, ["q"])
    response = client.get(
        f"/v1/projects/{project_id}/export",
        params={"format": "kto"},
        headers=Keys.auth(keys.operator),
    )
    assert (response.status_code, response.json()["field"]) == (422, "format")


def test_parquet_export_loads_with_datasets(client: TestClient, keys: Keys, tmp_path: Path) -> None:
    project_id = _pairs_project(client, keys, ["q1", "q2"])
    label_all(client, keys.annotator, project_id, by_prompt({"q1": "q1-good", "q2": "q2-good"}))
    response = client.get(
        f"/v1/projects/{project_id}/export",
        params={"file": "parquet"},
        headers=Keys.auth(keys.operator),
    )
    assert pq.read_table(io.BytesIO(response.content)).num_rows == 2
    path = tmp_path / "export.parquet"
    path.write_bytes(response.content)
    loaded = datasets.load_dataset("parquet", data_files=str(path), split="train")
    assert {"prompt", "chosen", "rejected"} <= set(loaded.column_names)


@pytest.mark.slow
@pytest.mark.parametrize("file", ["jsonl", "parquet"])
@pytest.mark.parametrize("trainer", ["dpo", "reward"])
def test_hh_rlhf_export_goes_through_trl_dataset_preparation(
    client: TestClient, keys: Keys, tiny_models: TinyModels, tmp_path: Path, file: str, trainer: str
) -> None:
    project_id = make_project(client, keys)
    lines = HH_SAMPLE.read_bytes().splitlines()[:40]
    client.post(
        f"/v1/projects/{project_id}/imports",
        params={"format": "hh-rlhf"},
        content=b"\n".join(lines),
        headers={**Keys.auth(keys.operator), "Content-Type": "application/x-ndjson"},
    )
    response = client.get(
        f"/v1/projects/{project_id}/export", params={"file": file}, headers=Keys.auth(keys.operator)
    )
    path = tmp_path / f"export.{file}"
    path.write_bytes(response.content)
    dataset = datasets.load_dataset(
        "json" if file == "jsonl" else "parquet", data_files=str(path), split="train"
    )
    model = tiny_models.causal_lm if trainer == "dpo" else tiny_models.classifier
    prepared = prepare_with_trl(trainer, dataset, model, tmp_path / "trl")  # type: ignore[arg-type]
    assert len(prepared) > 0
    assert {"chosen_ids", "rejected_ids"} <= set(prepared.column_names)


@pytest.mark.slow
def test_kto_export_goes_through_trl_dataset_preparation(
    client: TestClient, keys: Keys, tiny_models: TinyModels, tmp_path: Path
) -> None:
    project_id = make_project(client, keys, "binary")
    rows = [
        {
            "prompt": f"\n\nHuman: q{n}\n\nAssistant:",
            "completion": f" answer {n}",
            "label": n % 2 == 0,
        }
        for n in range(12)
    ]
    import_rows(client, keys, project_id, rows, fmt="trl-kto")
    response = client.get(
        f"/v1/projects/{project_id}/export",
        params={"format": "kto"},
        headers=Keys.auth(keys.operator),
    )
    path = tmp_path / "kto.jsonl"
    path.write_bytes(response.content)
    dataset = datasets.load_dataset("json", data_files=str(path), split="train")
    prepared = prepare_with_trl("kto", dataset, tiny_models.causal_lm, tmp_path / "trl")
    assert len(prepared) == 12
    assert {"prompt_ids", "completion_ids", "label"} <= set(prepared.column_names)


def test_annotator_labels_replace_an_imported_preference(client: TestClient, keys: Keys) -> None:
    project_id = make_project(client, keys)
    import_rows(
        client,
        keys,
        project_id,
        [{"prompt": "q", "chosen": "good", "rejected": "bad"}],
        fmt="trl-preference",
    )
    assert [r["chosen"] for r in _export(client, keys, project_id)[0]] == ["good"]
    label_all(client, keys.annotator, project_id, by_prompt({"q": "bad"}))
    rows, headers = _export(client, keys, project_id)
    assert [(r["chosen"], r["n_votes"]) for r in rows] == [("bad", 1)]
    assert headers["x-arbiter-ties-skipped"] == "0"


def test_a_majority_row_carries_the_strength_of_the_votes_behind_it(
    client: TestClient, keys: Keys
) -> None:
    project_id = _pairs_project(client, keys, ["q"], overlap=3)
    for key, pick, strength in [
        (keys.annotator, "good", 3),
        (keys.annotator2, "good", 1),
        (keys.annotator3, "bad", 3),
    ]:

        def choose(assignment: dict, pick: str = pick, strength: int = strength) -> dict:
            body = by_prompt({"q": f"q-{pick}"})(assignment)
            return {**body, "strength": strength}

        label_all(client, key, project_id, choose)
    assert _export(client, keys, project_id)[0][0]["strength"] == 2.0
    per_vote = _export(client, keys, project_id, aggregate="none")[0]
    assert sorted((r["chosen"], r["strength"]) for r in per_vote) == [
        ("q-bad", 3.0),
        ("q-good", 1.0),
        ("q-good", 3.0),
    ]


def test_out_of_range_dates_are_422(client: TestClient, keys: Keys) -> None:
    project_id = _pairs_project(client, keys, ["q"])
    response = client.get(
        f"/v1/projects/{project_id}/export",
        params={"created_after": "9999-12-31T23:00:00-02:00"},
        headers=Keys.auth(keys.operator),
    )
    assert (response.status_code, response.json()["field"]) == (422, "created_after")
