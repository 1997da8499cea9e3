"""Score archives on a Dask cluster: partitions mapped with the model shipped once per worker."""

from __future__ import annotations

import shutil
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from triage.archive.local_job import ScoreSummary
from triage.archive.readers import ArchiveSpec, expand_inputs
from triage.archive.writers import output_format, prediction_record, result_columns
from triage.core.artifacts import read_card
from triage.core.errors import TriageError
from triage.core.model import TriageModel, load_model, load_model_bytes
from triage.core.scoring import Report, score_reports

INSTALL_HINT = "--dask needs the Dask extra: pip install 'triage[dask]'"


@dataclass(frozen=True)
class DaskJob:
    """`triage score --dask`, as the CLI builds it."""

    archive: ArchiveSpec
    output: Path
    model_path: Path
    scheduler: str  # "local" or a scheduler address such as tcp://10.0.0.5:8786
    workers: int = 2  # for "local" only
    rows_per_partition: int = 20_000
    explain_terms: int = 0
    overwrite: bool = False


@dataclass(frozen=True)
class ModelBlob:
    """The artifact as bytes: scattered to every worker once, verified there before loading."""

    card: dict[str, Any]
    model: bytes


def score_on_dask(job: DaskJob) -> ScoreSummary:
    """Score the archive partition by partition on the cluster; write partitioned output."""
    try:
        import dask.dataframe as dd
        import pandas as pd
        from distributed import Client, LocalCluster
    except ImportError:
        raise TriageError(INSTALL_HINT) from None
    started = time.perf_counter()
    model = load_model(job.model_path)  # verify here first: refuse before touching the cluster
    blob = _blob(job.model_path)
    fmt = output_format(job.output)
    if job.output.exists():
        if not job.overwrite:
            raise TriageError(f"{job.output} exists: use --overwrite to replace it")
        shutil.rmtree(job.output) if job.output.is_dir() else job.output.unlink()
    with _client(job, Client, LocalCluster) as client:
        shipped = client.scatter(blob, broadcast=True)  # once per worker, not once per task
        frame = _read(job.archive, dd)
        columns = [*result_columns(model.labels, job.explain_terms > 0), "error"]
        meta = pd.DataFrame({c: pd.Series(dtype=_dtype(c)) for c in columns})
        scored = frame.map_partitions(
            _score_partition,
            shipped,
            job.archive.text_column,
            job.archive.id_column,
            job.explain_terms,
            meta=meta,
        )
        if fmt == "parquet":
            write = scored.to_parquet(str(job.output), write_index=False, compute=False)
        else:
            job.output.mkdir(parents=True)
            write = scored.to_csv(str(job.output / "part-*.csv"), index=False, compute=False)
        tally_meta = pd.DataFrame({c: pd.Series(dtype="int64") for c in _tally_columns(model)})
        tallies = scored.map_partitions(_tally, list(model.labels), meta=tally_meta)
        # Through this client, which holds the scattered model (not dask's default scheduler);
        # one pass computes both the files and the counts.
        _, counts = client.gather(client.compute([write, tallies]))
    totals = counts.sum()
    summary = ScoreSummary(
        output=str(job.output), model_version=model.version, errors_column="error"
    )
    summary.rows, summary.errors = int(totals["rows"]), int(totals["errors"])
    summary.needs_review = int(totals["needs_review"])
    summary.labels = Counter(
        {label: int(totals[f"n_{label}"]) for label in model.labels if totals[f"n_{label}"]}
    )
    summary.scored = summary.rows - summary.errors
    summary.seconds = time.perf_counter() - started
    return summary


def _client(job: DaskJob, client_type: Any, cluster_type: Any) -> Any:
    if job.scheduler == "local":
        # ":0": any free port for the scheduler's HTTP endpoint (None still binds 8787).
        cluster = cluster_type(
            n_workers=job.workers, threads_per_worker=1, processes=True, dashboard_address=":0"
        )
        return client_type(cluster, set_as_default=False)
    return client_type(job.scheduler, set_as_default=False)


def _blob(model_path: Path) -> ModelBlob:
    directory = model_path.resolve()
    card = read_card(directory)
    return ModelBlob(card.document, (directory / card.document["artifact"]["file"]).read_bytes())


def _read(spec: ArchiveSpec, dd: Any) -> Any:
    files = [str(p) for p, _ in expand_inputs(spec.inputs)]
    kinds = {Path(f).name.lower().removesuffix(".gz").rsplit(".", 1)[-1] for f in files}
    if len(kinds) != 1:
        raise TriageError("--dask needs inputs of one format (all CSV, all JSONL or all Parquet)")
    kind = kinds.pop()
    compression = "gzip" if files[0].lower().endswith(".gz") else None
    if kind == "csv":
        return dd.read_csv(
            files,
            dtype=str,
            keep_default_na=False,
            blocksize=None if compression else "32MB",
            compression=compression,
            encoding_errors="replace",
        )
    if kind in ("jsonl", "ndjson"):
        return dd.read_json(
            files,
            lines=True,
            orient="records",
            dtype=False,
            blocksize=None if compression else 32 * 2**20,
            compression=compression,
        )
    if kind == "parquet":
        return dd.read_parquet(files)
    raise TriageError(f"--dask reads CSV, JSONL and Parquet, not .{kind} (score those locally)")


_models: dict[str, TriageModel] = {}


def _model(blob: ModelBlob) -> TriageModel:
    # One verified, unpickled model per worker process, whatever number of tasks it runs.
    sha = str(blob.card["artifact"]["sha256"])
    if sha not in _models:
        _models[sha] = load_model_bytes(blob.card, blob.model)
    return _models[sha]


def _score_partition(
    frame: Any,
    blob: ModelBlob,
    text_column: str,
    id_column: str,
    explain_terms: int,
    partition_info: dict[str, Any] | None = None,
) -> Any:
    import pandas as pd

    model = _model(blob)
    number = partition_info["number"] if partition_info else 0
    texts = frame[text_column].tolist() if text_column in frame else [None] * len(frame)
    ids = (
        frame[id_column].astype(str).tolist()
        if id_column in frame
        else [f"{number}:{i + 1}" for i in range(len(frame))]
    )
    reports = [
        Report(
            text=t if isinstance(t, str) else "",
            report_id=i,
            top_terms=explain_terms,
            problem=None if isinstance(t, str) else f"no {text_column!r} value",
        )
        for t, i in zip(texts, ids, strict=True)
    ]
    records = []
    for report, outcome in zip(reports, score_reports(model, reports), strict=True):
        if outcome.prediction is not None:
            record = prediction_record(
                report.report_id, outcome.prediction, model.labels, explain_terms > 0
            )
            record["error"] = ""
        else:
            record = {"id": report.report_id, "error": str(outcome.error)}
        records.append(record)
    columns = [*result_columns(model.labels, explain_terms > 0), "error"]
    out = pd.DataFrame.from_records(records, columns=columns)
    return out.astype({c: _dtype(c) for c in columns})


def _tally_columns(model: TriageModel) -> list[str]:
    return ["rows", "errors", "needs_review", *(f"n_{label}" for label in model.labels)]


def _tally(frame: Any, labels: list[str]) -> Any:
    """One row of counts per partition."""
    import pandas as pd

    ok = frame["error"] == ""
    counts = frame.loc[ok, "label"].value_counts()
    row = {
        "rows": len(frame),
        "errors": int((~ok).sum()),
        "needs_review": int(frame.loc[ok, "needs_review"].astype(bool).sum()),
        **{f"n_{label}": int(counts.get(label, 0)) for label in labels},
    }
    return pd.DataFrame([row], dtype="int64")


def _dtype(column: str) -> str:
    if column == "confidence" or column.startswith("prob_"):
        return "float64"
    if column == "needs_review":
        return "boolean"
    return "string"
