"""What recording decisions costs: the gRPC service and archive scoring with and without the
decision record (SQLite and PostgreSQL), measured side by side in one run, and how fast the
journal's writer (a process of its own) puts decisions into each store.

Repeats are interleaved (no record, SQLite, PostgreSQL, then again), so that the machine's
drift falls on every configuration alike; the figures are medians and ratios to "no record".
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg

from triage.core.model import Prediction

POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"


def fresh_postgres() -> tuple[str, str]:
    """A new database on the local server: (its SQLAlchemy URL, its name)."""
    name = f"triage_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}", name


def drop_postgres(name: str) -> None:
    with psycopg.connect(POSTGRES, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def store_flags(backend: str, tmp: Path, pg_url: str) -> list[str]:
    if backend == "none":
        return ["--no-record"]
    url = f"sqlite:///{tmp / 'record.db'}" if backend == "sqlite" else pg_url
    return ["--store", url, "--spool", str(tmp / f"spool-{backend}")]


def bench_record_service(
    model_path: Path, texts: list[str], seconds: float, repeats: int
) -> dict[str, Any]:
    """Unary c64 (one channel) against three servers: no record, SQLite, PostgreSQL."""
    from run import ServerProcess, Transport, _load, _tree_cpu, _unary

    pg_url, pg_name = fresh_postgres()
    results: dict[str, Any] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="triage-bench-record-") as tmp:
            servers = {
                backend: ServerProcess(model_path, store_flags(backend, Path(tmp), pg_url))
                for backend in ("none", "sqlite", "postgresql")
            }
            try:
                runs: dict[str, list[dict[str, Any]]] = {b: [] for b in servers}
                for _ in range(repeats):
                    for backend, server in servers.items():
                        cpu_before = server.cpu_seconds()
                        front_before = _tree_cpu(server.process.pid, descend=False)
                        writer_before = _writer_cpu(Path(tmp) / f"spool-{backend}")
                        run = _load(server.target, 64, 1, seconds, _unary(texts), Transport())
                        run["server_cpu_cores"] = (server.cpu_seconds() - cpu_before) / seconds
                        run["front_cpu_cores"] = (
                            _tree_cpu(server.process.pid, descend=False) - front_before
                        ) / seconds
                        run["writer_cpu_cores"] = (
                            _writer_cpu(Path(tmp) / f"spool-{backend}") - writer_before
                        ) / seconds
                        runs[backend].append(run)
                for backend, backend_runs in runs.items():
                    results[backend] = {
                        k: statistics.median(r[k] for r in backend_runs) for k in backend_runs[0]
                    }
                    results[backend]["runs_calls_per_s"] = [r["calls_per_s"] for r in backend_runs]
                base = results["none"]["calls_per_s"]
                for backend in ("sqlite", "postgresql"):
                    results[backend]["vs_no_record"] = results[backend]["calls_per_s"] / base
            finally:
                for server in servers.values():
                    server.stop()
    finally:
        drop_postgres(pg_name)
    return results


def _writer_cpu(spool: Path) -> float:
    """CPU seconds of the decision journal's writer process of ``spool`` (the process holding
    its writer lock open; 0.0 without one). It is also in the server's CPU: a descendant."""
    lock = str(spool / "writer.lock")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if any(os.readlink(fd) == lock for fd in (entry / "fd").iterdir()):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except OSError:
            continue
    return 0.0


def bench_record_archive(
    model_path: Path, texts: list[str], rows: int, repeats: int
) -> dict[str, Any]:
    """`triage score --workers 1` over one CSV archive: without --record, into SQLite, into
    PostgreSQL; whole command wall time (store opening and the final drain included)."""
    from batch_bench import make_archive, run_score

    pg_url, pg_name = fresh_postgres()
    results: dict[str, Any] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="triage-bench-record-archive-") as tmp:
            work = Path(tmp)
            archive = make_archive(texts, rows, work / "archive.csv")
            flags = {
                "none": (),
                "sqlite": (
                    "--record",
                    "--store",
                    f"sqlite:///{work / 'record.db'}",
                    "--spool",
                    str(work / "spool-sqlite"),
                ),
                "postgresql": ("--record", "--store", pg_url, "--spool", str(work / "spool-pg")),
            }
            runs: dict[str, list[float]] = {backend: [] for backend in flags}
            for _ in range(repeats):
                for backend, extra in flags.items():
                    runs[backend].append(
                        run_score(archive, model_path, 1, work, extra)["rows_per_s"]
                    )
            for backend, rates in runs.items():
                results[backend] = {"rows_per_s": statistics.median(rates), "runs": rates}
            base = results["none"]["rows_per_s"]
            for backend in ("sqlite", "postgresql"):
                results[backend]["vs_no_record"] = results[backend]["rows_per_s"] / base
    finally:
        drop_postgres(pg_name)
    return {"rows": rows, **results}


def bench_store_writes(decisions: int = 50_000) -> dict[str, Any]:
    """Decisions per second the journal's writer sustains into each store (from a full spool:
    the rate at which a backlog drains), and the cost of record() on the calling thread."""
    from triage.store.database import open_store
    from triage.store.journal import DecisionJournal
    from triage.store.records import Decision

    prediction = Prediction(
        label="fraud",
        confidence=0.93,
        scores=(("fraud", 0.93), ("cybercrime", 0.04), ("general", 0.02), ("terrorism", 0.01)),
        needs_review=False,
        top_terms=(),
        model_version="bench",
    )
    results: dict[str, Any] = {}
    pg_url, pg_name = fresh_postgres()
    try:
        with tempfile.TemporaryDirectory(prefix="triage-bench-writes-") as tmp:
            for backend, url in (("sqlite", f"sqlite:///{tmp}/w.db"), ("postgresql", pg_url)):
                store = open_store(url)
                journal = DecisionJournal(store, Path(tmp) / f"spool-{backend}").start()
                try:
                    batch = [
                        Decision.of(prediction, report_id=f"r{i}", source="Classify")
                        for i in range(decisions)
                    ]
                    costs = []
                    started = time.perf_counter()
                    for d in batch:
                        t = time.perf_counter()
                        journal.record((d,))
                        costs.append(time.perf_counter() - t)
                    appended = time.perf_counter()
                    if not journal.flush(600):
                        raise RuntimeError(f"{backend}: the journal did not drain")
                    done = time.perf_counter()
                    results[backend] = {
                        "decisions": decisions,
                        "record_us_p50": statistics.median(costs) * 1e6,
                        "record_us_p99": sorted(costs)[int(len(costs) * 0.99)] * 1e6,
                        "end_to_end_per_s": decisions / (done - started),
                        "append_per_s": decisions / (appended - started),
                    }
                finally:
                    journal.close()
                    store.close()
    finally:
        drop_postgres(pg_name)
    return results


def print_record(report: dict[str, Any]) -> None:
    service = report.get("service")
    if service:
        print("decision record, unary c64 (1 channel), interleaved repeats, medians:")
        for backend in ("none", "sqlite", "postgresql"):
            r = service[backend]
            ratio = f"  {r['vs_no_record']:.1%} of no-record" if "vs_no_record" in r else ""
            print(
                f"  {backend:<10} {r['calls_per_s']:7,.0f} calls/s  p50 {r['p50_ms']:6.2f} ms  "
                f"p99 {r['p99_ms']:7.2f} ms  server CPU {r['server_cpu_cores']:.2f} "
                f"(front {r['front_cpu_cores']:.2f}, journal writer "
                f"{r.get('writer_cpu_cores', 0.0):.2f})  load-generator CPU "
                f"{r['client_cpu_cores']:.2f}{ratio}"
            )
    archive = report.get("archive")
    if archive:
        print(f"decision record, triage score --workers 1, {archive['rows']:,}-row CSV:")
        for backend in ("none", "sqlite", "postgresql"):
            r = archive[backend]
            ratio = f"  {r['vs_no_record']:.1%} of no-record" if "vs_no_record" in r else ""
            print(f"  {backend:<10} {r['rows_per_s']:7,.0f} rows/s{ratio}")
    writes = report.get("writes")
    if writes:
        print("journal -> store, one thread recording one decision per call:")
        for backend, w in writes.items():
            print(
                f"  {backend:<10} record() p50 {w['record_us_p50']:.1f} us "
                f"(p99 {w['record_us_p99']:.1f} us); {w['decisions']:,} decisions in the "
                f"store at {w['end_to_end_per_s']:,.0f}/s end to end"
            )
    sys.stdout.flush()
