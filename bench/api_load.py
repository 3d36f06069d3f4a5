"""Load benchmark of annotation submits against a real `arbiter serve`, on SQLite and PostgreSQL.

For each backend it seeds a template database once (migrations, one annotator API key per
client, and two pairwise projects with overlap 1 and `--items` items each, imported through the
domain import: the first for the annotator loop, the second with `--items` // max(`--clients`)
items per annotator already leased to it, written straight into the assignments table), then
for every (workers, threads, clients, quick submit) setting it clones the template, starts
`.venv/bin/arbiter serve` as a subprocess on a free port (ARBITER_WORKERS, ARBITER_QUICK_SUBMIT,
and ARBITER_THREADS when `--threads` is given; quick submit off, every submit through the
FastAPI route and the ORM, is the baseline run beside the default, on), and drives it from
this process with N concurrent clients (one asyncio loop, uvloop when installed, a minimal
HTTP/1.1 keep-alive client; `--client httpx` switches to httpx.AsyncClient). On that one
server it runs, in turn:

  1. ceilings: GET /healthz in a loop (no key, no database, no threadpool
     hops) and GET /docs (FastAPI's own async route: no threadpool) -> requests/s;
  2. loop: POST /v1/projects/{id}/assignments (lease), then
     POST /v1/assignments/{id}/labels {"kind": "pairwise", "choice": "a"}, on the first
     project -> submits/s and the latency of each lease and each submit (two requests a label);
  3. submit-only: POST /v1/assignments/{id}/labels alone, each client walking through the
     pre-leased assignments of its key(s) in the second project -> submits/s and submit latency
     (one request a label: the service's "annotation submits per second" figure).

Each phase warms up for `--warmup` s, then measures for `--duration` s (ceiling:
`--ceiling-duration`); only requests completing inside the window count. The submit-only phase
needs `--items` >= its submits/s x (warm-up + duration); a client that runs out of pre-leased
assignments stops and the table marks the phase "(ran dry)". CPU used during each window is
split between the server processes, PostgreSQL backends and this load generator (from /proc),
and with `--profile DIR` py-spy samples the server during each measured window and a summary
of the hot spots is printed. The server is stopped and every database dropped at the end, also
on errors or Ctrl-C.

Output: one table (a line per setting and phase), then as the LAST line one JSON object
{"sqlite_submits_per_s", "sqlite_p99_ms", "postgres_submits_per_s", "postgres_p99_ms",
"sqlite_loop_submits_per_s", "sqlite_loop_p99_ms", "postgres_loop_submits_per_s",
"postgres_loop_p99_ms", "sqlite_quick_vs_route", "postgres_quick_vs_route"}: the first four
from the submit-only phase, the loop_ ones from the annotator loop, all taken, per backend, from
the setting with the most submit-only submits/s; the quick_vs_route ones are submit-only
submits/s with quick submit on over off, at the same setting (null when not run).

    .venv/bin/python bench/api_load.py                      # both backends, 1 worker, 32 clients
    .venv/bin/python bench/api_load.py --workers 1,2 --threads 4,8 --clients 16,32,64
    .venv/bin/python bench/api_load.py --backends postgres --profile /tmp/prof
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import http.client
import io
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

BIN = Path(sys.executable).parent
ARBITER = BIN / "arbiter"
PY_SPY = BIN / "py-spy"
HOST = "127.0.0.1"
PG_ADMIN_DSN = os.environ.get("ARBITER_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
LABEL_BODY = b'{"kind":"pairwise","choice":"a"}'
CLK_TCK = os.sysconf("SC_CLK_TCK")

try:
    import orjson

    _loads: Callable[[bytes], Any] = orjson.loads
except ImportError:  # pragma: no cover - orjson is a service dependency
    _loads = json.loads


def log(msg: str) -> None:
    """Progress on stderr, so stdout holds only the results."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- databases


def _pg_url(dbname: str) -> str:
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    return f"{base}/{dbname}"


def _pg_admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(sql)  # type: ignore[arg-type]


class SqliteBackend:
    """A SQLite file per run, copied from a seeded template in a temp dir."""

    name = "sqlite"

    def __init__(self, tmp: Path) -> None:
        self.dir = tmp / "sqlite"
        self.dir.mkdir()
        self.template = self.dir / "template.db"
        self.runs = 0

    def template_url(self) -> str:
        return f"sqlite:///{self.template}"

    def clone(self) -> str:
        self.runs += 1
        path = self.dir / f"run{self.runs}.db"
        shutil.copyfile(self.template, path)
        return f"sqlite:///{path}"

    def drop(self, url: str) -> None:
        path = url.removeprefix("sqlite:///")
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(path + suffix)

    def cleanup(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


class PostgresBackend:
    """A PostgreSQL database per run, cloned from a seeded template database; all dropped."""

    name = "postgres"

    def __init__(self) -> None:
        self.prefix = f"arbiter_bench_{uuid.uuid4().hex[:10]}"
        self.created: list[str] = []
        self.runs = 0

    def _create(self, name: str, template: str | None = None) -> str:
        _pg_admin(f"CREATE DATABASE {name}" + (f" TEMPLATE {template}" if template else ""))
        self.created.append(name)
        return _pg_url(name)

    def template_url(self) -> str:
        return self._create(f"{self.prefix}_tpl")

    def clone(self) -> str:
        self.runs += 1
        return self._create(f"{self.prefix}_r{self.runs}", f"{self.prefix}_tpl")

    def drop(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        _pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        if name in self.created:
            self.created.remove(name)

    def cleanup(self) -> None:
        for name in list(reversed(self.created)):
            try:
                _pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            except Exception as exc:
                log(f"could not drop {name}: {exc}")
        self.created.clear()


Backend = SqliteBackend | PostgresBackend


@dataclass
class Seed:
    """What a seeded database holds for the load.

    `project_id`: the annotator-loop project (nothing leased). `keys`: one annotator key per
    client. `prelease_project_id`: the submit-only project, whose items are already leased:
    `prelease[key]` lists that key's leased assignment ids, in item order.
    """

    project_id: int
    keys: list[str]
    prelease_project_id: int
    prelease: dict[str, list[int]]


def _items_jsonl(n: int, prefix: str = "bench") -> bytes:
    filler = "lorem ipsum dolor sit amet " * 6
    out = io.BytesIO()
    for i in range(n):
        row = {
            "id": f"{prefix}-{i}",
            "prompt": f"Bench prompt {i}: which answer is more helpful? {filler}",
            "responses": [
                {"text": f"Answer A to {i}. {filler}{filler}", "source": "model-a"},
                {"text": f"Answer B to {i}. {filler}{filler}", "source": "model-b"},
            ],
        }
        out.write(json.dumps(row).encode() + b"\n")
    out.seek(0)
    return out.getvalue()


def seed(url: str, items: int, annotators: int, analyze: bool = True) -> Seed:
    """Migrate `url` and fill it: two pairwise projects (overlap 1) of `items` items each and
    one annotator key per client.

    The first project is for the annotator loop (lease, then submit). In the second one
    (lease_seconds 86400) each annotator already holds `items // annotators` leased items, a
    disjoint slice each, for the submit-only phase. On PostgreSQL the seeded database is then
    VACUUM ANALYZEd unless `analyze` is false.
    """
    from sqlalchemy import Table, insert, select

    from service.db import make_engine, make_session_factory, session_scope, utcnow
    from service.domain.auth import create_key
    from service.domain.imports import ImportOptions, run_import
    from service.domain.projects import create_project
    from service.migrate import upgrade
    from service.models import Assignment, AssignmentStatus, FeedbackKind, Item, Role

    if items < annotators:
        raise ValueError(f"--items {items} is fewer than the {annotators} annotators")
    upgrade(url)
    engine = make_engine(url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            _, admin, _ = create_key(session, "bench-admin", Role.admin, "api_load bench")
            project_ids = []
            for name, lease_seconds, prefix in (
                ("bench-pairwise", 600, "bench"),
                ("bench-pairwise-preleased", 86_400, "pre"),
            ):
                project = create_project(
                    session,
                    name=name,
                    kind=FeedbackKind.pairwise,
                    overlap=1,
                    lease_seconds=lease_seconds,
                    instructions="Pick the more helpful answer.",
                    created_by_id=admin.id,
                )
                report = run_import(
                    session,
                    project.id,
                    io.BytesIO(_items_jsonl(items, prefix)),
                    ImportOptions(format="arbiter", batch_size=1000),
                    admin.id,
                )
                if report.items_created != items:
                    raise RuntimeError(f"import created {report.items_created} of {items} items")
                project_ids.append(project.id)
            project_id, prelease_project_id = project_ids
            annotator_ids: dict[str, int] = {}
            for n in range(annotators):
                _, user, secret = create_key(session, f"bench-annotator-{n:04d}", Role.annotator)
                annotator_ids[secret] = user.id
            keys = list(annotator_ids)

            # Pre-lease the second project's items, a disjoint slice per annotator, straight
            # into the table: the lease endpoint keeps only one live lease per annotator per
            # project, so it cannot hand out a stock of leases for the submit-only phase.
            item_ids = session.scalars(
                select(Item.id).where(Item.project_id == prelease_project_id).order_by(Item.id)
            ).all()
            per_annotator = items // annotators
            now = utcnow()
            expires = now + dt.timedelta(days=1)
            rows = [
                {
                    "project_id": prelease_project_id,
                    "item_id": item_id,
                    "annotator_id": annotator_ids[key],
                    "status": AssignmentStatus.leased,
                    "leased_at": now,
                    "lease_expires_at": expires,
                }
                for n, key in enumerate(keys)
                for item_id in item_ids[n * per_annotator : (n + 1) * per_annotator]
            ]
            table = cast(Table, Assignment.__table__)
            for start in range(0, len(rows), 5000):
                session.execute(insert(table), rows[start : start + 5000])
            by_annotator: dict[int, list[int]] = defaultdict(list)
            for assignment_id, annotator_id in session.execute(
                select(table.c.id, table.c.annotator_id)
                .where(table.c.project_id == prelease_project_id)
                .order_by(table.c.item_id)
            ):
                by_annotator[annotator_id].append(assignment_id)
            prelease = {key: by_annotator[user_id] for key, user_id in annotator_ids.items()}
            session.commit()
        if engine.dialect.name == "sqlite":
            with engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        elif analyze:
            # What autovacuum does within a minute of a big import; without statistics the
            # planner picks nested-loop anti-joins and progress() gets ~100x slower.
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM ANALYZE")
    finally:
        engine.dispose()
    return Seed(project_id, keys, prelease_project_id, prelease)


# --------------------------------------------------------------------------- server


_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(?:Error|Exception|Timeout)\b:?[^\[]*")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class Server:
    """`arbiter serve` in its own process group; stop() ends the whole group."""

    def __init__(self, url: str, workers: int, log_path: Path, env: dict[str, str]) -> None:
        self.port = _free_port()
        self.log_path = log_path
        self.env = {
            **os.environ,
            **env,
            "ARBITER_DATABASE_URL": url,
            "ARBITER_HOST": HOST,
            "ARBITER_PORT": str(self.port),
            "ARBITER_WORKERS": str(workers),
            "PYTHONUNBUFFERED": "1",
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 90.0) -> None:
        with self.log_path.open("wb") as out:
            self.proc = subprocess.Popen(
                [str(ARBITER), "serve"],
                cwd=REPO,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                conn = http.client.HTTPConnection(HOST, self.port, timeout=2)
                try:
                    conn.request("GET", "/healthz")
                    if conn.getresponse().status == 200:
                        return
                finally:
                    conn.close()
            time.sleep(0.1)
        raise RuntimeError(f"server not healthy after {timeout:.0f}s:\n{self.log_tail()}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def exceptions(self) -> Counter[str]:
        """Exception lines in the server log (type and the start of the message), counted."""
        found: Counter[str] = Counter()
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return found
        for line in text.splitlines():
            match = _EXCEPTION_LINE.match(line)
            if match:
                found[match.group(0)[:90]] += 1
        return found

    def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        pgid = self.proc.pid  # start_new_session: the group is the server and its workers
        for sig, wait_s in ((signal.SIGINT, 15.0), (signal.SIGKILL, 10.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, sig)
            try:
                self.proc.wait(wait_s)
                break
            except subprocess.TimeoutExpired:
                continue
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)  # stragglers (workers) if the parent exited first


# --------------------------------------------------------------------------- CPU accounting


def _processes() -> dict[int, tuple[int, str, float]]:
    """pid -> (ppid, comm, CPU seconds of it and of its reaped children), readable processes.

    Reaped children count so that short-lived processes (PostgreSQL parallel workers, backends
    that exit) still show up, in their parent's total.
    """
    out: dict[int, tuple[int, str, float]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as fh:
                data = fh.read()
        except OSError:
            continue
        rpar = data.rfind(")")
        fields = data[rpar + 2 :].split()
        cpu = sum(int(v) for v in fields[11:15]) / CLK_TCK  # utime stime cutime cstime
        out[int(name)] = (int(fields[1]), data[data.find("(") + 1 : rpar], cpu)
    return out


def _machine_busy() -> float:
    with open("/proc/stat") as fh:
        values = [int(v) for v in fh.readline().split()[1:]]
    idle = values[3] + values[4]
    return (sum(values[:8]) - idle) / CLK_TCK


@dataclass
class CpuSnapshot:
    """Cumulative CPU seconds per process of each group, this process and the machine."""

    server: dict[int, float]
    postgres: dict[int, float]
    client: float
    machine: float


def cpu_snapshot(server_pid: int) -> CpuSnapshot:
    """CPU so far of the server's process tree, of PostgreSQL's processes, of this process."""
    procs = _processes()
    children: dict[int, list[int]] = defaultdict(list)
    for pid, (ppid, _, _) in procs.items():
        children[ppid].append(pid)
    tree, stack = set(), [server_pid]
    while stack:
        pid = stack.pop()
        if pid in procs and pid not in tree:
            tree.add(pid)
            stack.extend(children[pid])
    times = os.times()
    return CpuSnapshot(
        server={p: procs[p][2] for p in tree},
        postgres={p: c for p, (_, comm, c) in procs.items() if comm.startswith("postgres")},
        client=times.user + times.system,
        machine=_machine_busy(),
    )


def cpu_cores(before: CpuSnapshot, after: CpuSnapshot, seconds: float) -> dict[str, float]:
    """CPU cores used per group over a window (processes gone by its end are not counted)."""

    def delta(a: dict[int, float], b: dict[int, float]) -> float:
        return sum(max(0.0, cpu - a.get(pid, 0.0)) for pid, cpu in b.items())

    cores = {
        "server": delta(before.server, after.server) / seconds,
        "postgres": delta(before.postgres, after.postgres) / seconds,
        "client": (after.client - before.client) / seconds,
        "machine": (after.machine - before.machine) / seconds,
    }
    rest = cores["machine"] - cores["server"] - cores["postgres"] - cores["client"]
    cores["other"] = max(0.0, rest)
    return cores


# --------------------------------------------------------------------------- HTTP clients


class RawConnection:
    """One HTTP/1.1 keep-alive connection with just enough parsing for this API."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, key: str | None = None, body: bytes | None = None
    ) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
        assert self.reader is not None
        head = f"{method} {path} HTTP/1.1\r\nHost: {HOST}:{self.port}\r\n"
        if key is not None:
            head += f"Authorization: Bearer {key}\r\n"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        elif method != "GET":
            head += "Content-Length: 0\r\n"
        self.writer.write(head.encode() + b"\r\n" + (body or b""))
        try:
            raw = await self.reader.readuntil(b"\r\n\r\n")
            status = int(raw[9:12])
            lower = raw.lower()
            at = lower.find(b"\r\ncontent-length:")
            if at >= 0:
                end = lower.find(b"\r\n", at + 2)
                size = int(raw[at + 17 : end])
                payload = await self.reader.readexactly(size) if size else b""
            elif b"transfer-encoding: chunked" in lower:
                payload = await self._chunked()
            else:
                payload = b""
            # uvicorn drops the connection after an unhandled exception (500) without saying
            # so; reconnect rather than have the next request fail on a reset socket.
            if status >= 500 or b"\r\nconnection: close" in lower:
                await self.close()
            return status, payload
        except BaseException:
            await self.close()
            raise

    async def _chunked(self) -> bytes:
        assert self.reader is not None
        parts = []
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            data = await self.reader.readexactly(size + 2)
            if size == 0:
                return b"".join(parts)
            parts.append(data[:-2])

    async def close(self) -> None:
        writer, self.reader, self.writer = self.writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


class HttpxConnection:
    """The same interface over a shared httpx.AsyncClient (heavier, for comparison)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    async def request(
        self, method: str, path: str, key: str | None = None, body: bytes | None = None
    ) -> tuple[int, bytes]:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        if body is not None:
            headers["Content-Type"] = "application/json"
        response = await self.client.request(method, path, headers=headers, content=body)
        return response.status_code, response.content

    async def close(self) -> None:
        return None


# --------------------------------------------------------------------------- load phases


@dataclass
class Window:
    """The measuring window, in perf_counter time; set by the controller."""

    start: float = math.inf
    end: float = math.inf
    stop: bool = False


@dataclass
class PhaseResult:
    """Latencies (ms) of requests completed inside the window, errors, CPU, and exhaustion."""

    seconds: float
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: Counter[str] = field(default_factory=Counter)
    exhausted: int = 0
    cpu: dict[str, float] = field(default_factory=dict)

    def rate(self, op: str) -> float:
        return len(self.latencies[op]) / self.seconds

    def pct(self, op: str, q: float) -> float:
        values = sorted(self.latencies[op])
        if not values:
            return math.nan
        return values[max(0, math.ceil(q * len(values)) - 1)]


Conn = RawConnection | HttpxConnection


async def _timed(
    res: PhaseResult, win: Window, op: str, call: Awaitable[tuple[int, bytes]], ok: tuple[int, ...]
) -> tuple[int, bytes] | None:
    start = time.perf_counter()
    try:
        status, body = await call
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        if win.start <= time.perf_counter() <= win.end:
            res.errors[f"{op}:{type(exc).__name__}"] += 1
        await asyncio.sleep(0.01)
        return None
    done = time.perf_counter()
    inside = win.start <= done <= win.end
    if status not in ok:
        if inside:
            res.errors[f"{op}:{status}"] += 1
        return None
    if inside:
        res.latencies[op].append((done - start) * 1000.0)
    return status, body


async def _get_loop(conn: Conn, path: str, res: PhaseResult, win: Window) -> None:
    while not win.stop:
        await _timed(res, win, path, conn.request("GET", path), (200,))


async def _annotator_loop(
    conn: Conn, key: str, project_id: int, res: PhaseResult, win: Window
) -> None:
    lease_path = f"/v1/projects/{project_id}/assignments"
    while not win.stop:
        got = await _timed(res, win, "lease", conn.request("POST", lease_path, key), (200, 204))
        if got is None:
            continue
        status, body = got
        if status == 204:  # no item left for this annotator: the project ran dry
            res.exhausted += 1
            return
        path = f"/v1/assignments/{_loads(body)['id']}/labels"
        await _timed(res, win, "submit", conn.request("POST", path, key, LABEL_BODY), (201,))


async def _submit_loop(
    conn: Conn, work: list[tuple[str, int]], res: PhaseResult, win: Window
) -> None:
    """Submit a label to each pre-leased (key, assignment id) in turn; no lease requests."""
    for key, assignment_id in work:
        if win.stop:
            return
        path = f"/v1/assignments/{assignment_id}/labels"
        await _timed(res, win, "submit", conn.request("POST", path, key, LABEL_BODY), (201,))
    if not win.stop:  # this client's pre-leased assignments ran out before the window ended
        res.exhausted += 1


def submit_work(seed_: Seed, client: int, clients: int) -> list[tuple[str, int]]:
    """Client `client` of `clients`: the pre-leased assignments of keys client, client +
    clients, ... in order, so a run with fewer clients than keys still uses every lease."""
    return [(key, aid) for key in seed_.keys[client::clients] for aid in seed_.prelease[key]]


async def run_phase(
    kind: str,
    port: int,
    clients: int,
    warmup: float,
    duration: float,
    server_pid: int,
    seed_: Seed | None = None,
    client_kind: str = "raw",
    on_window: Callable[[], Any] | None = None,
) -> PhaseResult:
    """Run `clients` loops of `kind`; measure after the warm-up.

    `kind`: "loop" (lease then submit, on the first project), "submit-only" (submits to the
    pre-leased assignments of the second project), or a path to GET.
    """
    res, win = PhaseResult(seconds=duration), Window()
    httpx_client = None
    if client_kind == "httpx":
        import httpx

        httpx_client = httpx.AsyncClient(
            base_url=f"http://{HOST}:{port}",
            limits=httpx.Limits(max_connections=clients, max_keepalive_connections=clients),
            timeout=60.0,
        )
        conns: list[Conn] = [HttpxConnection(httpx_client) for _ in range(clients)]
    else:
        conns = [RawConnection(port) for _ in range(clients)]
    if kind == "loop":
        assert seed_ is not None
        tasks = [
            asyncio.create_task(_annotator_loop(c, seed_.keys[n], seed_.project_id, res, win))
            for n, c in enumerate(conns)
        ]
    elif kind == "submit-only":
        assert seed_ is not None
        tasks = [
            asyncio.create_task(_submit_loop(c, submit_work(seed_, n, clients), res, win))
            for n, c in enumerate(conns)
        ]
    else:
        tasks = [asyncio.create_task(_get_loop(c, kind, res, win)) for c in conns]
    try:
        await asyncio.sleep(warmup)
        before = cpu_snapshot(server_pid)
        win.start = time.perf_counter()
        win.end = win.start + duration
        if on_window is not None:
            on_window()
        await asyncio.sleep(duration)
        after = cpu_snapshot(server_pid)
        res.seconds = time.perf_counter() - win.start
        win.end = min(win.end, win.start + res.seconds)
        res.cpu = cpu_cores(before, after, res.seconds)
        win.stop = True
        _, pending = await asyncio.wait(tasks, timeout=10.0)
        if pending:
            res.errors["unfinished_at_stop"] += len(pending)
    finally:
        win.stop = True
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for conn in conns:
            await conn.close()
        if httpx_client is not None:
            await httpx_client.aclose()
    return res


def run_async(coro: Awaitable[PhaseResult]) -> PhaseResult:
    """Run a phase on uvloop when installed (cheaper per request), else asyncio."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)  # type: ignore[arg-type]
    return uvloop.run(coro)  # type: ignore[arg-type,no-any-return]


# --------------------------------------------------------------------------- profiling

_LINE_NO = re.compile(r":\d+\)$")
_PATH_TRIM = re.compile(r"\(.*?(?:site-packages/|/lib/python3\.\d+/|" + re.escape(str(REPO)) + "/)")


def start_profiler(
    pid: int, seconds: float, out: Path, mode: str = "gil"
) -> subprocess.Popen[bytes] | None:
    """py-spy record (raw collapsed stacks) of the server and its workers, or None."""
    if not PY_SPY.exists():
        log("py-spy not installed in this venv: no profile")
        return None
    cmd = [str(PY_SPY), "record", "--pid", str(pid), "--subprocesses", "--nonblocking"]
    if mode == "gil":
        cmd.append("--gil")
    cmd += ["--rate", "100", "--duration", str(max(1, int(seconds))), "--format", "raw"]
    cmd += ["--output", str(out)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


_FRAME = re.compile(r"^\S.* \(.*\)$")


def _frames(stack: str) -> list[str]:
    frames = []
    for frame in stack.split(";"):
        # Skip py-spy's "process N:cmdline" / "thread" pseudo-frames (a worker's command line
        # itself holds a ';', so pieces of it show up as frames too).
        if frame.startswith(("process ", "thread ")) or not _FRAME.match(frame):
            continue
        frames.append(_PATH_TRIM.sub("(", _LINE_NO.sub(")", frame)))
    return frames


# Inclusive shares of these frames answer "where does the time go" in the request path.
MARKERS: list[tuple[str, str]] = [
    ("threadpool hop dispatch (event loop side)", "run_sync_in_worker_thread"),
    ("threadpool worker threads (all sync work)", "WorkerThread.run (anyio/"),
    ("uvicorn/httptools protocol", "uvicorn/protocols/http"),
    ("auth dependency (current_user)", "current_user (service/api/deps.py)"),
    ("  auth key lookup (authenticate)", "authenticate (service/domain/auth.py)"),
    ("lease route (lease_next route)", "lease_next (service/api/routes/assignments.py)"),
    ("  domain lease_next", "lease_next (service/domain/assignment.py)"),
    ("  _assignment_out (item view + progress)", "_assignment_out (service/api/routes"),
    ("    progress() counts", "progress (service/domain/assignment.py)"),
    ("    load_item_views", "load_item_views (service/domain/items.py)"),
    ("submit route", "submit (service/api/routes/assignments.py)"),
    ("  domain submit_label", "submit_label (service/domain/labels.py)"),
    ("get_project", "get_project (service/domain/projects.py)"),
    ("FastAPI dependency resolution (solve_dependencies)", "solve_dependencies (fastapi/"),
    ("  per-request get_dependant (dependency_overrides)", "get_dependant (fastapi/"),
    ("FastAPI response serialization", "serialize_response (fastapi/"),
    ("Session.commit", "commit (sqlalchemy/orm/session.py)"),
    ("Session.flush", "flush (sqlalchemy/orm/session.py)"),
    ("Session.close", "close (sqlalchemy/orm/session.py)"),
    ("SQL compile", "compile (sqlalchemy/"),
    ("driver cursor.execute (do_execute)", "do_execute (sqlalchemy/engine/default.py)"),
    ("pool checkout/checkin", "sqlalchemy/pool/"),
]


def _bucket(frame: str) -> str:
    path = frame[frame.find("(") + 1 :]
    for prefix in ("sqlalchemy", "psycopg", "pydantic", "fastapi", "starlette", "uvicorn"):
        if path.startswith(prefix):
            return prefix
    if path.startswith(("anyio", "asyncio", "threading", "concurrent", "queue")):
        return "anyio/asyncio/threading"
    if path.startswith("service/"):
        return "service (own code)"
    return "other: " + path.split("/")[0].split(".")[0].rstrip(")")


def summarise_profile(path: Path, mode: str = "gil", top: int = 15) -> str:
    """Top frames by self and inclusive samples, plus the request-path markers."""
    self_: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    buckets: Counter[str] = Counter()
    markers: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack or not count_s.isdigit():
            continue
        count, frames = int(count_s), _frames(stack)
        if not frames:
            continue
        total += count
        self_[frames[-1]] += count
        buckets[_bucket(frames[-1])] += count
        for frame in set(frames):
            incl[frame] += count
        for label, needle in MARKERS:
            if any(needle in f for f in frames):
                markers[label] += count
    if not total:
        return f"profile {path}: no samples"

    def share(n: int) -> str:
        return f"{100.0 * n / total:5.1f}%"

    what = "samples of the GIL holder" if mode == "gil" else "samples of non-idle threads"
    out = [f"profile {path}: {total} {what} at 100 Hz"]
    out.append("  self time by package of the leaf frame:")
    out += [f"    {share(n)}  {name}" for name, n in buckets.most_common(12)]
    out.append("  request path (inclusive):")
    out += [f"    {share(markers[label])}  {label}" for label, _ in MARKERS]
    out.append(f"  top {top} frames by self time:")
    out += [f"    {share(n)}  {name}" for name, n in self_.most_common(top)]
    out.append(f"  top {top} service/ frames by inclusive time:")
    own = [(n, f) for f, n in incl.items() if "(service/" in f]
    out += [f"    {share(n)}  {name}" for n, name in sorted(own, reverse=True)[:top]]
    return "\n".join(out)


# --------------------------------------------------------------------------- driver


PHASES = ("loop", "submit-only")


@dataclass
class Row:
    """One setting: its ceilings and the two measured phases (one table line each)."""

    backend: str
    workers: int
    threads: str
    clients: int
    quick: bool
    phases: dict[str, PhaseResult]
    ceiling: PhaseResult | None
    async_ceiling: PhaseResult | None
    profiled: set[str] = field(default_factory=set)
    server_exceptions: Counter[str] = field(default_factory=Counter)

    @property
    def submits_per_s(self) -> float:
        """The headline figure: submits/s of the submit-only phase."""
        return self.phases["submit-only"].rate("submit")


def _threads_label(threads: int | None) -> str:
    if threads is not None:
        return str(threads)
    return os.environ.get("ARBITER_THREADS", "default")


def run_setting(
    backend: Backend,
    seed_: Seed,
    workers: int,
    threads: int | None,
    clients: int,
    quick: bool,
    args: argparse.Namespace,
    tmp: Path,
) -> Row:
    """Clone the template, serve it, run the ceilings, the annotator loop and the submit-only
    phase on that one server, stop, drop."""
    url = backend.clone()
    env = {"ARBITER_QUICK_SUBMIT": "true" if quick else "false"}
    if args.pool_size is not None:
        env["ARBITER_DB_POOL_SIZE"] = str(args.pool_size)
    if args.max_overflow is not None:
        env["ARBITER_DB_MAX_OVERFLOW"] = str(args.max_overflow)
    if threads is not None:
        env["ARBITER_THREADS"] = str(threads)
    tag = f"{backend.name}-w{workers}-t{_threads_label(threads)}-c{clients}-q{_on(quick)}"
    server = Server(url, workers, tmp / f"server-{tag}.log", env)
    profilers: list[subprocess.Popen[bytes]] = []
    profiled: set[str] = set()

    def measure(kind: str) -> PhaseResult:
        """One measured phase, py-spy sampling the server during its window with --profile."""
        profile_out = Path(args.profile) / f"{tag}-{kind}.txt" if args.profile else None
        profiler: subprocess.Popen[bytes] | None = None

        def on_window() -> None:
            nonlocal profiler
            if profile_out is not None:
                profiler = start_profiler(server.pid, args.duration, profile_out, args.profile_mode)
                if profiler is not None:
                    profilers.append(profiler)

        got = run_async(
            run_phase(
                kind,
                server.port,
                clients,
                args.warmup,
                args.duration,
                server.pid,
                seed_,
                args.client,
                on_window,
            )
        )
        log(
            f"{tag}: {kind}: {got.rate('submit'):.0f} submits/s, "
            f"p99 {got.pct('submit', 0.99):.1f} ms, errors {dict(got.errors)}"
            + (f", {got.exhausted} clients ran dry" if got.exhausted else "")
        )
        if kind == "submit-only" and got.exhausted:
            log(f"{tag}: submit-only ran out of pre-leased items: raise --items")
        if profiler is not None:
            profiled.add(kind)
            try:
                _, err = profiler.communicate(timeout=args.duration + 30)
            except subprocess.TimeoutExpired:
                profiler.kill()
                _, err = profiler.communicate()
            if profile_out is not None and profile_out.exists():
                print(summarise_profile(profile_out, args.profile_mode), flush=True)
                print(flush=True)
            else:
                log(f"{tag}: py-spy wrote nothing: {err.decode(errors='replace')[-500:]}")
        return got

    try:
        log(f"{tag}: starting server on port {server.port}")
        server.start()
        ceilings: dict[str, PhaseResult | None] = {"/healthz": None, "/docs": None}
        if args.ceiling_duration > 0:
            for path in ceilings:
                ceilings[path] = got = run_async(
                    run_phase(
                        path,
                        server.port,
                        clients,
                        min(args.warmup, 1.0),
                        args.ceiling_duration,
                        server.pid,
                        client_kind=args.client,
                    )
                )
                log(
                    f"{tag}: ceiling GET {path} {got.rate(path):.0f} req/s, "
                    f"p50 {got.pct(path, 0.5):.1f} ms, p99 {got.pct(path, 0.99):.1f} ms"
                )
        phases = {kind: measure(kind) for kind in PHASES}
        if server.proc is not None and server.proc.poll() is not None:
            log(f"{tag}: server died:\n{server.log_tail()}")
        exceptions = server.exceptions()
        if exceptions:
            log(f"{tag}: exceptions in the server log: {dict(exceptions.most_common(5))}")
        return Row(
            backend.name,
            workers,
            _threads_label(threads),
            clients,
            quick,
            phases,
            ceilings["/healthz"],
            ceilings["/docs"],
            profiled=profiled,
            server_exceptions=exceptions,
        )
    finally:
        for profiler in profilers:
            if profiler.poll() is None:
                profiler.kill()
                profiler.wait()
        server.stop()
        backend.drop(url)


def _on(flag: bool) -> str:
    return "on" if flag else "off"


def _f(value: float, digits: int = 1) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def print_table(rows: list[Row]) -> None:
    """The results table (markdown), one line per setting and phase, with the CPU split."""
    head = [
        "backend",
        "workers",
        "threads",
        "clients",
        "quick",
        "phase",
        "submits/s",
        "submit p50 ms",
        "submit p99 ms",
        "lease p50",
        "lease p99",
        "errors",
        "ceiling req/s",
        "req/s vs ceiling",
        "async ceiling",
        "cpu srv/pg/client/other",
    ]
    lines = []
    for r in rows:
        ceiling = r.ceiling.rate("/healthz") if r.ceiling else math.nan
        async_ceiling = r.async_ceiling.rate("/docs") if r.async_ceiling else math.nan
        for kind in PHASES:
            s = r.phases[kind]
            requests = s.rate("submit") + s.rate("lease")
            flags = (" (ran dry)" if s.exhausted else "") + (
                " (profiled)" if kind in r.profiled else ""
            )
            cpu = s.cpu
            lines.append(
                [
                    r.backend,
                    str(r.workers),
                    r.threads,
                    str(r.clients),
                    _on(r.quick),
                    kind + flags,
                    _f(s.rate("submit"), 0),
                    _f(s.pct("submit", 0.5)),
                    _f(s.pct("submit", 0.99)),
                    _f(s.pct("lease", 0.5)),
                    _f(s.pct("lease", 0.99)),
                    str(sum(s.errors.values())),
                    _f(ceiling, 0),
                    f"{100.0 * requests / ceiling:.0f}%" if ceiling and ceiling == ceiling else "-",
                    _f(async_ceiling, 0),
                    f"{cpu['server']:.2f}/{cpu['postgres']:.2f}/{cpu['client']:.2f}/"
                    f"{cpu['other']:.2f}",
                ]
            )
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(head)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for line in lines:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) + " |")
    for r in rows:
        errors = {k: dict(s.errors) for k, s in r.phases.items() if s.errors}
        if errors or r.server_exceptions:
            print(
                f"{r.backend} w{r.workers} t{r.threads} c{r.clients} q{_on(r.quick)}: "
                f"client errors {errors}; server log {dict(r.server_exceptions.most_common(3))}"
            )
    print(
        "loop: each client leases (POST /v1/projects/{id}/assignments) then submits"
        " (POST /v1/assignments/{id}/labels), two requests per label; submit-only: each client"
        " only submits, to assignments leased in the seed (a second project), one request per"
        " label - the service's submits/s figure. (ran dry): clients ran out of items before"
        " the window ended (raise --items)."
    )
    print(
        "threads: ARBITER_THREADS of the server (default: not set);"
        " quick: ARBITER_QUICK_SUBMIT (on: common-case submits below FastAPI and the ORM;"
        " off: every submit through the route, the baseline);"
        " ceiling: GET /healthz req/s (async route, no key, no DB) with the same"
        " clients; req/s vs ceiling: (leases + submits)/s of the phase against it;"
        " async ceiling: GET /docs req/s (async route, no threadpool);"
        f" cpu: cores used in the phase's window ({os.cpu_count()} cores total) by the server"
        " processes, PostgreSQL, this load generator and everything else.",
        flush=True,
    )


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="sqlite,postgres", help="sqlite,postgres")
    parser.add_argument("--workers", type=_ints, default=[1], help="ARBITER_WORKERS list: 1,2")
    parser.add_argument(
        "--threads",
        type=_ints,
        default=[None],
        help="ARBITER_THREADS list: 4,8 (default: not set, the server's default)",
    )
    parser.add_argument(
        "--quick-submit",
        default="on,off",
        help="ARBITER_QUICK_SUBMIT settings to run: on,off (off is the baseline: the route alone)",
    )
    parser.add_argument("--clients", type=_ints, default=[32], help="client counts: 16,32,64")
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds")
    parser.add_argument(
        "--ceiling-duration",
        type=float,
        default=3.0,
        help="seconds of GET /healthz and of GET /docs (0: skip)",
    )
    parser.add_argument(
        "--items",
        type=int,
        default=40_000,
        help="items in each of the two projects (each run starts full); the submit-only phase "
        "needs at least its submits/s x (warm-up + duration)",
    )
    parser.add_argument("--pool-size", type=int, default=None, help="ARBITER_DB_POOL_SIZE")
    parser.add_argument("--max-overflow", type=int, default=None, help="ARBITER_DB_MAX_OVERFLOW")
    parser.add_argument(
        "--no-analyze",
        action="store_true",
        help="skip VACUUM ANALYZE of the seeded PostgreSQL database (the state right after an "
        "import, before autovacuum)",
    )
    parser.add_argument("--client", choices=("raw", "httpx"), default="raw")
    parser.add_argument("--profile", default=None, help="dir for py-spy profiles of the server")
    parser.add_argument(
        "--profile-mode",
        choices=("gil", "active"),
        default="gil",
        help="gil: samples of the thread holding the GIL (Python CPU); active: every thread "
        "py-spy thinks busy (includes waits in the DB driver)",
    )
    args = parser.parse_args(argv)
    quick = [q.strip() for q in args.quick_submit.split(",") if q.strip()]
    if not quick or not set(quick) <= {"on", "off"}:
        parser.error("--quick-submit takes on and/or off")
    args.quick_submit = [q == "on" for q in quick]
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if not set(args.backends) <= {"sqlite", "postgres"} or not args.backends:
        parser.error("--backends takes sqlite and/or postgres")
    if args.duration <= 0 or args.warmup < 0 or min(args.workers + args.clients) < 1:
        parser.error("duration > 0, warmup >= 0, workers and clients >= 1")
    if any(t is not None and t < 1 for t in args.threads):
        parser.error("threads >= 1")
    if args.items < max(args.clients):
        parser.error("--items must be at least the largest --clients")
    return args


def quick_vs_route(rows: list[Row], backend: str) -> float | None:
    """Submit-only submits/s with the quick path over the route alone, at the best setting."""
    by_setting = {
        (r.workers, r.threads, r.clients, r.quick): r for r in rows if r.backend == backend
    }
    ratios = [
        r.submits_per_s / route.submits_per_s
        for (w, t, c, quick), r in by_setting.items()
        if quick and (route := by_setting.get((w, t, c, False))) and route.submits_per_s
    ]
    return round(max(ratios), 2) if ratios else None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
    # SIGTERM ends the run like Ctrl-C, so servers are stopped and databases dropped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="arbiter-bench-") as tmp_s:
        tmp = Path(tmp_s)
        for name in args.backends:
            backend: Backend = SqliteBackend(tmp) if name == "sqlite" else PostgresBackend()
            try:
                started = time.monotonic()
                seed_ = seed(
                    backend.template_url(), args.items, max(args.clients), not args.no_analyze
                )
                log(
                    f"{name}: seeded 2 x {args.items} items, {max(args.clients)} annotator keys, "
                    f"{args.items // max(args.clients)} pre-leased items per key "
                    f"in {time.monotonic() - started:.1f}s"
                )
                for workers in args.workers:
                    for threads in args.threads:
                        for clients in args.clients:
                            for quick in args.quick_submit:
                                rows.append(
                                    run_setting(
                                        backend, seed_, workers, threads, clients, quick, args, tmp
                                    )
                                )
            finally:
                backend.cleanup()
    print_table(rows)
    summary: dict[str, float | None] = {}
    for prefix, kind in (("", "submit-only"), ("loop_", "loop")):
        for name in ("sqlite", "postgres"):
            mine = [r for r in rows if r.backend == name]
            # Both figures of a backend come from its setting with the most submit-only submits/s.
            best = max(mine, key=lambda r: r.submits_per_s).phases[kind] if mine else None
            summary[f"{name}_{prefix}submits_per_s"] = (
                round(best.rate("submit"), 1) if best else None
            )
            p99 = best.pct("submit", 0.99) if best else math.nan
            summary[f"{name}_{prefix}p99_ms"] = None if math.isnan(p99) else round(p99, 2)
    for name in ("sqlite", "postgres"):
        summary[f"{name}_quick_vs_route"] = quick_vs_route(rows, name)
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
