"""Helpers that label a project through the API, as annotators would."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.service.helpers import lease, submit


def label_all(client: TestClient, key: str, project_id: int, choose: Any) -> list[dict[str, Any]]:
    """Lease and label every item the annotator can get; `choose(assignment)` gives the body."""
    done = []
    while (response := lease(client, key, project_id)).status_code == 200:
        assignment = response.json()
        result = submit(client, key, assignment["id"], choose(assignment))
        assert result.status_code == 201, result.text
        done.append(assignment)
    assert response.status_code == 204
    return done


def by_prompt(choices: dict[str, str]) -> Any:
    """A chooser picking the response whose text is choices[prompt] (or 'tie')."""

    def choose(assignment: dict[str, Any]) -> dict[str, Any]:
        item = assignment["item"]
        wanted = choices[item["prompt"]]
        if wanted == "tie":
            return {"kind": "pairwise", "choice": "tie"}
        position = next(r["position"] for r in item["responses"] if r["text"] == wanted)
        return {"kind": "pairwise", "choice": "ab"[position]}

    return choose
