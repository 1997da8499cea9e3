"""`make bench`: training time, in-process predict throughput, and the gRPC service under load.

Every figure is a median over repeats, printed beside the in-process ceiling measured in the
same run, because this machine is shared and noisy. Results also go to bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from triage.core.model import TriageModel, load_model
from triage.training.corpus import read_labelled
from triage.training.train import TrainConfig, train
from triage.v1 import triage_pb2 as pb
from triage.v1 import triage_pb2_grpc as pb_grpc

ROOT = Path(__file__).resolve().parent.parent
TRAIN = ROOT / "training" / "data" / "train.jsonl"
TEST = ROOT / "training" / "data" / "test.jsonl"


def median_rate(work: Callable[[], int], repeats: int) -> tuple[float, list[float]]:
    """Median items/s of ``work`` (which returns how many items it did) over ``repeats`` runs."""
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        items = work()
        rates.append(items / (time.perf_counter() - started))
    return statistics.median(rates), rates


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def bench_training() -> dict[str, Any]:
    data, test = read_labelled(TRAIN), read_labelled(TEST)
    started = time.perf_counter()
    result = train(data, test, TrainConfig())
    seconds = time.perf_counter() - started
    assert result.test is not None
    return {"train_seconds": seconds, "test_macro_f1": result.test.macro_f1}


def bench_predict(model: TriageModel, texts: list[str], repeats: int) -> dict[str, Any]:
    batch_rate, _ = median_rate(lambda: len(model.predict(texts, top_k=0)), repeats)
    explained_rate, _ = median_rate(lambda: len(model.predict(texts, top_k=5)), repeats)
    singles = []
    for text in texts[:300]:
        started = time.perf_counter()
        model.predict([text])
        singles.append((time.perf_counter() - started) * 1000)
    return {
        "docs": len(texts),
        "batch_docs_per_s": batch_rate,
        "batch_explained_docs_per_s": explained_rate,
        "single_p50_ms": statistics.median(singles),
        "single_docs_per_s": 1000 / statistics.mean(singles),
    }


class ServerProcess:
    """`triage serve` in its own process, so the load generator does not share its GIL."""

    def __init__(self, model: Path, extra: Sequence[str] = ()) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "triage",
                "--log-level",
                "warning",
                "serve",
                "--port",
                "0",
                "--model",
                str(model),
                "--access-log",
                "off",
                "--watch",
                "0",
                *(
                    extra
                    if any(f in extra for f in ("--store", "--no-record"))
                    else [*extra, "--no-record"]
                ),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        match = re.search(r"serving on (\S+)", line)
        if not match:
            raise RuntimeError(f"server did not start: {line!r}")
        self.target = match.group(1).replace("127.0.0.1", "localhost")

    def cpu_seconds(self) -> float:
        """CPU of the server and its model processes."""
        return _tree_cpu(self.process.pid)

    def memory(self) -> list[dict[str, Any]]:
        """Resident memory of the server process and each model process, in MiB: anonymous
        (private to the process) and file-backed (the memory-mapped model, shared)."""
        pids = [self.process.pid, *_descendants(self.process.pid)]
        rows = []
        for pid in pids:
            fields = {}
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                key, _, value = line.partition(":")
                if key in ("VmRSS", "RssAnon", "RssFile"):
                    fields[key] = int(value.split()[0]) / 1024
            role = "front" if pid == self.process.pid else _role(pid)
            rows.append(
                {
                    "pid": pid,
                    "role": role,
                    "rss_mib": fields.get("VmRSS", 0.0),
                    "anon_mib": fields.get("RssAnon", 0.0),
                    "file_mib": fields.get("RssFile", 0.0),
                }
            )
        return rows

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=60)
        if self.process.stdout:
            self.process.stdout.close()


def _role(pid: int) -> str:
    """A child of the fork server is a model process; other descendants are helpers (the fork
    server itself, multiprocessing's resource tracker)."""
    status = Path(f"/proc/{pid}/status").read_text()
    parent = int(status.split("PPid:")[1].split()[0])
    parent_cmd = Path(f"/proc/{parent}/cmdline").read_text()
    return "model" if "forkserver" in parent_cmd else "helper"


def _descendants(pid: int) -> list[int]:
    try:
        children = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []
    return [d for c in children for d in (c, *_descendants(c))]


def _tree_cpu(pid: int, descend: bool = True) -> float:
    total = 0.0
    for each in (pid, *(_descendants(pid) if descend else ())):
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


@dataclass(frozen=True)
class Transport:
    credentials: grpc.ChannelCredentials | None = None
    metadata: tuple[tuple[str, str], ...] = ()

    def channel(self, target: str) -> grpc.Channel:
        if self.credentials is None:
            return grpc.insecure_channel(target)
        return grpc.secure_channel(target, self.credentials)


def _load(
    target: str,
    concurrency: int,
    channels: int,
    seconds: float,
    make_call: Callable[[Any, int, Transport], int],
    transport: Transport,
) -> dict[str, Any]:
    """``concurrency`` threads spread over ``channels`` channels for ``seconds``."""
    latencies: list[float] = []
    items = [0]
    lock = threading.Lock()
    stop = threading.Event()
    opened = [transport.channel(target) for _ in range(channels)]
    stubs = [pb_grpc.TriageServiceStub(c) for c in opened]
    for stub in stubs:
        make_call(stub, 0, transport)  # connect and warm up

    def worker(slot: int) -> None:
        stub = stubs[slot % channels]
        i = slot
        while not stop.is_set():
            started = time.perf_counter()
            n = make_call(stub, i, transport)
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                latencies.append(elapsed)
                items[0] += n
            i += concurrency

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(concurrency)]
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    for c in opened:
        c.close()
    client_cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (
        cpu_after.ru_stime - cpu_before.ru_stime
    )
    return {
        "calls_per_s": len(latencies) / wall,
        "items_per_s": items[0] / wall,
        "p50_ms": statistics.median(latencies),
        "p99_ms": percentile(latencies, 0.99),
        "client_cpu_cores": client_cpu / wall,  # cores the load generator itself used
    }


def _unary(texts: list[str]) -> Callable[[Any, int, Transport], int]:
    def call(stub: Any, i: int, transport: Transport) -> int:
        stub.Classify(
            pb.ClassifyRequest(text=texts[i % len(texts)], report_id=str(i)),
            timeout=30,
            metadata=transport.metadata,
        )
        return 1

    return call


def _batch(texts: list[str]) -> Callable[[Any, int, Transport], int]:
    def call(stub: Any, i: int, transport: Transport) -> int:
        start = (i * 100) % (len(texts) - 100)
        stub.ClassifyBatch(
            pb.ClassifyBatchRequest(
                reports=[pb.ClassifyRequest(text=t) for t in texts[start : start + 100]]
            ),
            timeout=60,
            metadata=transport.metadata,
        )
        return 100

    return call


def _stream(texts: list[str]) -> Callable[[Any, int, Transport], int]:
    """The same 100 reports as ``_batch``, sent as one ClassifyStream, every answer read."""

    def call(stub: Any, i: int, transport: Transport) -> int:
        start = (i * 100) % (len(texts) - 100)
        requests = (pb.ClassifyRequest(text=t) for t in texts[start : start + 100])
        answers = sum(
            1 for _ in stub.ClassifyStream(requests, timeout=60, metadata=transport.metadata)
        )
        assert answers == 100
        return 100

    return call


# (name, server flags, scenarios: (label, kind, concurrency, channels), secured)
SERVERS: list[tuple[str, list[str], list[tuple[str, str, int, int]], bool]] = [
    (
        "baseline: 1 process, no batching",
        ["--workers", "0", "--no-batching"],
        [
            ("unary c1", "unary", 1, 1),
            ("unary c64, 1 channel", "unary", 64, 1),
            ("unary c64, 16 channels", "unary", 64, 16),
        ],
        False,
    ),
    (
        "default: batching + model processes + quiet lane",
        [],
        [
            ("unary c1", "unary", 1, 1),
            ("unary c8", "unary", 8, 1),
            ("unary c64, 1 channel", "unary", 64, 1),
            ("unary c64, 16 channels", "unary", 64, 16),
            ("batch 100/call c1", "batch", 1, 1),
            ("batch 100/call c2", "batch", 2, 1),
            ("stream 100/call c1", "stream", 1, 1),
            ("stream 100/call c2", "stream", 2, 1),
        ],
        False,
    ),
    ("default + TLS + token auth", [], [("unary c64, 1 channel", "unary", 64, 1)], True),
    ("default without the quiet lane", ["--no-quiet-lane"], [("unary c1", "unary", 1, 1)], False),
]


def _paired_c1(
    model: TriageModel, target: str, transport: Transport, texts: list[str], seconds: float
) -> dict[str, Any]:
    """Concurrency 1, each server call right after an in-process predict of the same text.

    This machine's speed drifts by tens of percent within minutes, so the gap between the
    service and in-process prediction is taken pair by pair, under the same conditions: the
    median of (server latency - in-process latency) over the pairs.
    """
    with transport.channel(target) as channel:
        stub = pb_grpc.TriageServiceStub(channel)
        stub.Classify(pb.ClassifyRequest(text=texts[0]), timeout=30, metadata=transport.metadata)
        local, served = [], []
        cpu_before = resource.getrusage(resource.RUSAGE_SELF)
        stop = time.perf_counter() + seconds
        i = 0
        while time.perf_counter() < stop:
            text = texts[i % len(texts)]
            started = time.perf_counter()
            model.predict([text])
            middle = time.perf_counter()
            stub.Classify(
                pb.ClassifyRequest(text=text, report_id=str(i)),
                timeout=30,
                metadata=transport.metadata,
            )
            local.append((middle - started) * 1000)
            served.append((time.perf_counter() - middle) * 1000)
            i += 1
        cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    used = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    client_cpu = max(0.0, used - sum(local) / 1000)  # the in-process predicts are not load
    return {
        "calls_per_s": len(served) / (sum(served) / 1000),
        "items_per_s": len(served) / (sum(served) / 1000),
        "p50_ms": statistics.median(served),
        "p99_ms": percentile(served, 0.99),
        "client_cpu_cores": client_cpu / seconds,
        "in_process_p50_ms": statistics.median(local),
        "gap_ms": statistics.median(s - m for s, m in zip(served, local, strict=True)),
        "busy_seconds": sum(served) / 1000,  # the time the server had a call
    }


def _grpc_floor_ms(target: str, transport: Transport, n: int = 300) -> float:
    """p50 of a health check: what one gRPC round trip costs here, with no model work."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with transport.channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        stub.Check(health_pb2.HealthCheckRequest(), timeout=10)
        times = []
        for _ in range(n):
            started = time.perf_counter()
            stub.Check(health_pb2.HealthCheckRequest(), timeout=10)
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def bench_service(
    model: TriageModel, model_path: Path, texts: list[str], seconds: float, repeats: int
) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    from tests.pki import make_pki  # a throwaway CA and server certificate

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="triage-bench-tls-") as tmp:
        pki = make_pki(Path(tmp))
        token = secrets.token_urlsafe(24)
        (Path(tmp) / "tokens").write_text(token + "\n")
        secure_flags = [
            "--tls-cert",
            str(pki.server_cert),
            "--tls-key",
            str(pki.server_key),
            "--token-file",
            str(Path(tmp) / "tokens"),
        ]
        secure = Transport(
            grpc.ssl_channel_credentials(pki.ca), (("authorization", f"Bearer {token}"),)
        )
        for name, flags, scenarios, secured in SERVERS:
            server = ServerProcess(model_path, [*flags, *(secure_flags if secured else [])])
            transport = secure if secured else Transport()
            results[name] = {"memory": server.memory()}
            try:
                results[name]["grpc_floor_ms"] = _grpc_floor_ms(server.target, transport)
                for label, kind, concurrency, channels in scenarios:
                    call = {"unary": _unary, "batch": _batch, "stream": _stream}[kind](texts)
                    runs = []
                    for _ in range(repeats):
                        cpu_before = server.cpu_seconds()
                        front_before = _tree_cpu(server.process.pid, descend=False)
                        if kind == "unary" and concurrency == 1:
                            run = _paired_c1(model, server.target, transport, texts, seconds)
                        else:
                            run = _load(
                                server.target, concurrency, channels, seconds, call, transport
                            )
                        busy = run.pop("busy_seconds", seconds)
                        run["server_cpu_cores"] = (server.cpu_seconds() - cpu_before) / busy
                        run["front_cpu_cores"] = (
                            _tree_cpu(server.process.pid, descend=False) - front_before
                        ) / busy
                        runs.append(run)
                    results[name][label] = {
                        k: statistics.median(r[k] for r in runs) for k in runs[0]
                    }
            finally:
                server.stop()
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "current")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0, help="per load level and repeat")
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument(
        "--only",
        choices=["predict", "model", "reading", "service", "batch", "record", "review"],
        default=None,
    )
    parser.add_argument("--archive-rows", type=int, default=100_000)
    parser.add_argument(
        "--big-archive-rows",
        type=int,
        default=1_000_000,
        help="rows of the archive whose peak memory is compared (0: skip)",
    )
    args = parser.parse_args(argv)

    model = load_model(args.model)
    texts = read_labelled(TRAIN).texts
    report: dict[str, Any] = {"model_version": model.version, "cores": os.cpu_count()}
    if not args.skip_training and args.only is None:
        report["training"] = bench_training()
        print(
            f"training: {report['training']['train_seconds']:.1f} s "
            f"(test macro-F1 {report['training']['test_macro_f1']:.3f})",
            flush=True,
        )
    if args.only in (None, "predict", "service"):  # the service figures need the ceiling
        report["predict"] = bench_predict(model, texts, args.repeats)
        p = report["predict"]
        print(
            f"in-process predict ({p['docs']} docs, median of {args.repeats}): "
            f"{p['batch_docs_per_s']:,.0f} docs/s batched, "
            f"{p['batch_explained_docs_per_s']:,.0f} docs/s with 5 explanation terms, "
            f"single-doc p50 {p['single_p50_ms']:.2f} ms "
            f"({p['single_docs_per_s']:,.0f} docs/s one at a time)",
            flush=True,
        )
    if args.only in (None, "model"):
        from model_bench import bench_model, print_model

        report["model"] = bench_model(model, args.repeats)
        print_model(report["model"])
    if args.only in (None, "reading"):
        from reading_bench import bench_reading, print_reading

        report["reading"] = bench_reading(model, args.repeats)
        print_reading(report["reading"])
    if args.only in (None, "service"):
        report["service"] = bench_service(
            model, args.model, texts, args.seconds, min(args.repeats, 3)
        )
        ceiling = report["predict"]["batch_explained_docs_per_s"]
        single = report["predict"]["single_p50_ms"]
        print(
            f"gRPC service on loopback (median of {min(args.repeats, 3)} x {args.seconds:.0f} s;"
            f" ceiling = in-process batched predict with explanations, {ceiling:,.0f} docs/s;"
            f" in-process single-doc p50 {single:.2f} ms):"
        )
        for name, recorded in report["service"].items():
            scenarios = dict(recorded)  # latest.json keeps everything; printing pops
            memory = ", ".join(
                f"{m['role']} {m['rss_mib']:.0f} MiB ({m['anon_mib']:.0f} own + "
                f"{m['file_mib']:.0f} file-backed)"
                for m in scenarios.pop("memory")
            )
            floor = scenarios.pop("grpc_floor_ms")
            print(f"  {name}   [resident memory at start: {memory}]")
            print(f"    gRPC round trip with no model work (health check p50): {floor:.2f} ms")
            for label, r in scenarios.items():
                gap = (
                    f"  [paired with in-process predict, p50 {r['in_process_p50_ms']:.2f} ms: "
                    f"server - in-process, median of pairs +{r['gap_ms']:.2f} ms]"
                    if "gap_ms" in r
                    else ""
                )
                print(
                    f"    {label:<24} {r['items_per_s']:7,.0f} docs/s "
                    f"({r['items_per_s'] / ceiling:5.0%} of ceiling)  p50 {r['p50_ms']:7.2f} ms"
                    f"  p99 {r['p99_ms']:7.2f} ms  server CPU {r['server_cpu_cores']:.2f}"
                    f" (front {r['front_cpu_cores']:.2f})"
                    f"  load-generator CPU {r['client_cpu_cores']:.2f} cores{gap}"
                )
    if args.only in (None, "batch"):
        from batch_bench import bench_batch

        b = bench_batch(
            model, args.model, texts, args.archive_rows, args.big_archive_rows, args.repeats
        )
        report["batch"] = b
        ceiling = b["in_memory_docs_per_s"]
        print(
            f"batch scoring, {b['rows']:,}-row CSV archive (in-memory single-process predict "
            f"in the same run: {ceiling:,.0f} docs/s):"
        )
        for workers in sorted({1, b["cores"]}):
            r = b[f"workers_{workers}"]
            print(
                f"  --workers {workers}: {r['rows_per_s']:8,.0f} rows/s "
                f"({r['rows_per_s'] / (workers * ceiling):.0%} of {workers} x in-memory), "
                f"peak RSS {r['peak_rss_mib']:,.0f} MiB"
            )
        print(
            f"  all cores vs cores x in-memory: {b['all_cores_vs_target_ceiling']:.0%} "
            "(target >= 90%)"
        )
        parallel = b["parallel_in_memory_docs_per_s"]
        all_cores = b[f"workers_{b['cores']}"]["rows_per_s"]
        print(
            f"  hardware ceiling: {b['cores']} in-memory predictors at once give {parallel:,.0f} "
            f"docs/s = {parallel / (b['cores'] * ceiling):.0%} of {b['cores']} x in-memory; "
            f"--workers {b['cores']} reaches "
            f"{all_cores / parallel:.0%} of that"
        )
        if "big" in b:
            big = b["big"]
            small = b[f"workers_{b['cores']}"]["peak_rss_mib"]
            print(
                f"  {big['rows']:,} rows: {big['rows_per_s']:,.0f} rows/s, peak RSS "
                f"{big['peak_rss_mib']:,.0f} MiB ({big['peak_rss_mib'] / small:.2f}x the "
                f"{b['rows']:,}-row peak)"
            )
    if args.only in (None, "record"):
        from record_bench import (
            bench_record_archive,
            bench_record_service,
            bench_store_writes,
            print_record,
        )

        report["record"] = {
            "service": bench_record_service(args.model, texts, args.seconds, args.repeats),
            "archive": bench_record_archive(args.model, texts, 20_000, args.repeats),
            "writes": bench_store_writes(),
        }
        print_record(report["record"])
    if args.only in (None, "review"):
        from review_bench import bench_review, print_review

        report["review"] = bench_review(args.model)
        print_review(report["review"])
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.json").write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
