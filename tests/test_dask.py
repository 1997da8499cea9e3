"""Scale-out: the same scoring on a real dask.distributed LocalCluster with two workers."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from triage.archive.dask_job import DaskJob, score_on_dask
from triage.archive.local_job import ScoreJob, run_score_job
from triage.archive.readers import ArchiveSpec
from triage.training.corpus import read_labelled

from .conftest import TINY

pytest.importorskip("distributed")


def test_dask_scores_equal_local_scores(models_dir: Path, tmp_path: Path) -> None:
    texts = read_labelled(TINY).texts
    frame = pd.DataFrame(
        {
            "id": [f"d{i}" for i in range(400)],
            "text": [f"{texts[i % len(texts)]} ({i})" for i in range(400)],
        }
    )
    frame.loc[7, "text"] = "   "
    source = tmp_path / "archive.csv"
    frame.to_csv(source, index=False)
    spec = ArchiveSpec((str(source),))
    local_out = tmp_path / "local.csv"
    run_score_job(ScoreJob(spec, local_out, models_dir / "current", chunk_size=64))
    dask_out = tmp_path / "dask.parquet"
    summary = score_on_dask(DaskJob(spec, dask_out, models_dir / "current", "local", workers=2))

    local = pd.read_csv(local_out, dtype={"id": str}).set_index("id")
    scored = pd.read_parquet(dask_out).set_index("id")
    assert len(scored) == 400 and scored.index.is_unique
    assert scored.loc["d7", "error"].startswith("text is empty")
    ok = scored[scored["error"] == ""]
    assert set(ok.index) == set(local.index) == {f"d{i}" for i in range(400)} - {"d7"}
    ok = ok.loc[local.index]
    assert (ok["label"] == local["label"]).all()
    for column in [c for c in local.columns if c.startswith("prob_")] + ["confidence"]:
        assert (ok[column] - local[column]).abs().max() < 1e-9, column
    assert (ok["needs_review"].astype(bool) == local["needs_review"].astype(bool)).all()
    assert (summary.rows, summary.errors, summary.scored) == (400, 1, 399)
    assert summary.labels == local["label"].value_counts().to_dict()
