"""The `arbiter` command: first start prints an admin key; keys, import and export work offline."""

from __future__ import annotations

import gc
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from typer.testing import CliRunner

from service.app import create_served_app
from service.cli import app
from service.config import get_settings
from service.db import make_engine, make_session_factory
from service.domain.projects import create_project
from service.models import FeedbackKind
from tests.service.helpers import jsonl
from tests.service.live_server import free_port


@pytest.fixture
def cli_env(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """ARBITER_DATABASE_URL pointing at a fresh database for in-process CLI calls."""
    monkeypatch.setenv("ARBITER_DATABASE_URL", sqlite_url)
    get_settings.cache_clear()
    yield sqlite_url
    get_settings.cache_clear()


def _pairwise_project(url: str) -> None:
    """Project 1, pairwise, created by user 1."""
    engine = make_engine(url)
    with make_session_factory(engine)() as session:
        create_project(
            session,
            name="p",
            kind=FeedbackKind.pairwise,
            overlap=1,
            lease_seconds=60,
            instructions="",
            created_by_id=1,
        )
    engine.dispose()


def _run(*args: str) -> str:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_keys_import_and_export_from_the_shell(cli_env: str, tmp_path: Path) -> None:
    key = _run("keys", "create", "--user", "olivia", "--role", "operator").strip()
    assert key.startswith("arb_")
    _pairwise_project(cli_env)
    data = tmp_path / "pairs.jsonl"
    data.write_bytes(jsonl([{"prompt": "q", "chosen": "good", "rejected": "bad"}]))
    assert "1 items, 1 labels" in _run(
        "import", "1", str(data), "--format", "trl-preference", "--as-user", "olivia"
    )
    out = tmp_path / "dpo.jsonl"
    assert "1 rows" in _run("export", "1", "--out", str(out))
    row = orjson.loads(out.read_bytes().splitlines()[0])
    assert (row["prompt"], row["chosen"], row["rejected"]) == ("q", "good", "bad")


def test_a_bad_import_exits_non_zero_with_line_numbers(cli_env: str, tmp_path: Path) -> None:
    _run("keys", "create", "--user", "admin", "--role", "admin")
    _pairwise_project(cli_env)
    data = tmp_path / "bad.jsonl"
    data.write_bytes(b'{"prompt": "q"}\n')
    result = CliRunner().invoke(app, ["import", "1", str(data)])
    assert result.exit_code == 1
    assert "line 1" in result.output


@pytest.mark.integration
def test_serve_migrates_prints_an_admin_key_once_and_serves(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "ARBITER_DATABASE_URL": f"sqlite:///{tmp_path / 'a.db'}",
        "ARBITER_PORT": str(port),
    }
    arbiter = [sys.executable, "-c", "from service.cli import main; main()", "serve"]
    for attempt in range(2):
        process = subprocess.Popen(
            arbiter, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert process.poll() is None and time.monotonic() < deadline, "serve did not start"
                time.sleep(0.2)
            if attempt == 0:
                process.terminate()
                output = process.communicate(timeout=30)[0]
                key = re.search(r"(arb_\S+)", output)
                assert key is not None, output
                first_key = key.group(1)
            else:
                me = httpx.get(
                    f"http://127.0.0.1:{port}/v1/me",
                    headers={"Authorization": f"Bearer {first_key}"},
                )
                assert me.json()["role"] == "admin"
                process.terminate()
                assert "arb_" not in process.communicate(timeout=30)[0]  # shown on first start only
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


def test_the_served_app_freezes_the_start_up_heap_out_of_the_collectors_sight(
    cli_env: str,
) -> None:
    gc.unfreeze()
    try:
        served = create_served_app()
        # gc.get_objects() lists what collections walk; frozen objects are not among them.
        walked = {id(obj) for obj in gc.get_objects()}
        made_at_start = [served, served.router, served.router.routes, served.state]
        frozen = [id(obj) not in walked for obj in made_at_start]
    finally:
        gc.unfreeze()
    walked_after_unfreeze = {id(obj) for obj in gc.get_objects()}

    assert frozen == [True] * len(made_at_start)
    assert id(served) in walked_after_unfreeze  # the check above can tell the difference
