"""Shadow scoring: a candidate model answers a sample of live traffic in one low-priority process,
and promotion can require that evidence (`--require-shadow`)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from triage.cli import main
from triage.cli.defaults import EXIT_NOT_PROMOTED, EXIT_OK
from triage.core.artifacts import CURRENT, MODEL_FILE, resolve_current, write_artifact
from triage.core.errors import ModelLoadError
from triage.core.model import TriageModel
from triage.runtime.shadow import CLOSED, FAILED, QUEUE_FULL, ShadowScorer
from triage.store.database import open_store
from triage.store.records import Decision, ShadowDecision, new_id, utc_now
from triage.training.corpus import read_labelled
from triage.training.train import TrainResult

from .conftest import REPO, TINY

TEXTS = read_labelled(TINY).texts


def _until(condition: Callable[[], bool], what: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        time.sleep(0.01)


def _gone(pid: int) -> bool:
    """Whether no process ``pid`` runs (a zombie counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state == "Z"


class Collected:
    """An ``on_scored`` that keeps what it is given, from the feeder thread."""

    def __init__(self) -> None:
        self.answers: list[ShadowDecision] = []
        self._lock = threading.Lock()

    def __call__(self, answers: Sequence[ShadowDecision]) -> None:
        with self._lock:
            self.answers.extend(answers)

    def __len__(self) -> int:
        with self._lock:
            return len(self.answers)


@pytest.fixture
def collected() -> Collected:
    return Collected()


@pytest.fixture
def scorer_of(collected: Collected) -> Iterator[Callable[..., ShadowScorer]]:
    """Makes shadow scorers that are closed after the test, whatever happens."""
    made: list[ShadowScorer] = []

    def make(model_dir: Path, share: float, **options: object) -> ShadowScorer:
        scorer = ShadowScorer(model_dir, share, collected, **options)  # type: ignore[arg-type]
        made.append(scorer)
        return scorer

    yield make
    for scorer in made:
        scorer.close()


# -- scoring ------------------------------------------------------------------------------------


def test_every_offer_is_scored_as_the_candidate_scores_it_in_process(
    models_dir: Path,
    tiny_model: TriageModel,
    collected: Collected,
    scorer_of: Callable[..., ShadowScorer],
) -> None:
    scorer = scorer_of(models_dir / "v1", 1.0, batch_size=8).start()
    ids = [new_id() for _ in TEXTS]
    assert all(scorer.offer(i, text) for i, text in zip(ids, TEXTS, strict=True))
    _until(lambda: len(collected) == len(TEXTS), "every offer scored")
    by_id = {a.decision_id: a for a in collected.answers}
    expected = tiny_model.predict(TEXTS, top_k=0)
    assert [by_id[i].label for i in ids] == [p.label for p in expected]
    for i, p in zip(ids, expected, strict=True):
        answer = by_id[i]
        assert answer.model_version == "v1"
        assert answer.confidence == pytest.approx(p.confidence)
        assert answer.scores == pytest.approx(dict(p.scores))
        assert (answer.needs_review, answer.reasons) == (p.needs_review, p.review_reasons)
        assert answer.latency_ms is not None and answer.latency_ms >= 0
    readings = scorer.readings()
    assert (readings.version, readings.offered, readings.sampled) == ("v1", len(TEXTS), len(TEXTS))
    assert readings.scored == len(TEXTS) and sum(readings.dropped.values()) == 0
    # The bounded CPU share: the candidate runs 10 nice levels below this process.
    assert scorer.pid is not None
    assert os.getpriority(os.PRIO_PROCESS, scorer.pid) == min(
        19, os.getpriority(os.PRIO_PROCESS, 0) + 10
    )


def test_the_share_is_sampled_by_decision_id_the_same_way_every_time(models_dir: Path) -> None:
    # Not started: offers only queue, so the sample is all that is measured.
    ids = [new_id() for _ in range(2000)] + [f"report-{n}" for n in range(2000)]
    none = ShadowScorer(models_dir / "v1", 0.0, print, max_queue=10_000)
    assert not any(none.offer(i, "text") for i in ids)
    assert (none.readings().offered, none.readings().sampled) == (len(ids), 0)
    half = [ShadowScorer(models_dir / "v1", 0.5, print, max_queue=10_000) for _ in range(2)]
    picked = [{i for i in ids if scorer.offer(i, "text")} for scorer in half]
    assert picked[0] == picked[1]  # by id, not by chance
    assert 0.45 * len(ids) < len(picked[0]) < 0.55 * len(ids)
    sequential = [i for i in picked[0] if i.startswith("report-")]
    assert 0.45 * 2000 < len(sequential) < 0.55 * 2000  # ids alike but for a counter, too
    assert half[0].readings().sampled == len(picked[0])
    for scorer in (none, *half):
        scorer.close()
    assert half[0].readings().dropped[CLOSED] == len(picked[0])  # queued, never scored
    assert not half[0].offer(ids[0], "text")  # closed: nothing is taken any more


def test_a_full_queue_drops_and_counts_without_blocking(
    models_dir: Path, collected: Collected, scorer_of: Callable[..., ShadowScorer]
) -> None:
    scorer = scorer_of(models_dir / "v1", 1.0, max_queue=5)
    taken: list[bool] = []
    # Nothing drains the queue before start(): a blocking offer would never return.
    offering = threading.Thread(
        target=lambda: taken.extend(scorer.offer(new_id(), TEXTS[n % 10]) for n in range(200))
    )
    offering.start()
    offering.join(30)
    assert not offering.is_alive(), "offer() blocked on a full queue"
    assert taken.count(True) == 5
    readings = scorer.readings()
    assert (readings.offered, readings.sampled, readings.queued) == (200, 200, 5)
    assert readings.dropped[QUEUE_FULL] == 195
    scorer.start()
    _until(lambda: len(collected) == 5, "the queued five scored")
    assert scorer.readings().scored == 5


def test_a_killed_candidate_is_restarted_and_its_lost_batch_counted(
    models_dir: Path,
    collected: Collected,
    scorer_of: Callable[..., ShadowScorer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    scorer = scorer_of(models_dir / "v1", 1.0).start()
    first = scorer.pid
    assert first is not None
    # Stopped, it cannot answer: what it is sent is in flight when it is killed.
    os.kill(first, signal.SIGSTOP)
    for text in TEXTS[:5]:
        scorer.offer(new_id(), text)
    _until(lambda: scorer.readings().queued < 5, "the feeder took a batch")
    os.kill(first, signal.SIGKILL)
    _until(lambda: scorer.readings().restarts == 1, "the candidate restarted")
    _until(lambda: scorer.readings().scored + scorer.readings().dropped[FAILED] == 5, "settled")
    assert scorer.readings().dropped[FAILED] >= 1  # at least the batch it held
    assert scorer.pid not in (None, first) and _gone(first)
    before = len(collected)
    for text in TEXTS[5:15]:
        assert scorer.offer(new_id(), text)
    _until(lambda: len(collected) == before + 10, "later offers scored by the new process")
    # Killed while idle: found and replaced without waiting for a batch.
    second, failed = scorer.pid, scorer.readings().dropped[FAILED]
    assert second is not None
    os.kill(second, signal.SIGKILL)
    _until(lambda: scorer.readings().restarts == 2 and scorer.pid not in (None, second), "again")
    assert scorer.readings().dropped[FAILED] == failed  # nothing was in flight this time
    assert all(text not in caplog.text for text in TEXTS[:15]), "a report text was logged"


def test_close_leaves_no_candidate_process(
    models_dir: Path, scorer_of: Callable[..., ShadowScorer]
) -> None:
    scorer = scorer_of(models_dir / "v1", 1.0).start()
    pid = scorer.pid
    assert pid is not None and not _gone(pid)
    scorer.close()
    assert _gone(pid)
    assert scorer.pid is None and not scorer.readings().running
    assert not scorer.offer(new_id(), TEXTS[0])


def test_a_tampered_candidate_is_refused_at_start(
    models_dir: Path, scorer_of: Callable[..., ShadowScorer]
) -> None:
    # Still a skops file that loads, one entry more: only the hash on the card can tell.
    with zipfile.ZipFile(models_dir / "v1" / MODEL_FILE, "a") as archive:
        archive.writestr("extra.txt", "swapped after the card was written")
    scorer = scorer_of(models_dir / "v1", 1.0)
    with pytest.raises(ModelLoadError, match="refus"):
        scorer.start()
    assert scorer.pid is None and not scorer.readings().running
    with pytest.raises(ModelLoadError, match="no model card"):
        scorer_of(models_dir / "missing", 1.0).start()


def test_the_candidate_dies_with_its_parent(models_dir: Path) -> None:
    script = (
        "import sys, time\n"
        "from triage.runtime.shadow import ShadowScorer\n"
        "s = ShadowScorer(sys.argv[1], 1.0, print).start()\n"
        "print(s.pid, flush=True)\n"
        "time.sleep(120)\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", script, str(models_dir / "v1")],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    ) as parent:
        child = 0  # /proc/0 does not exist: "gone"
        try:
            assert parent.stdout is not None
            child = int(parent.stdout.readline())
            assert not _gone(child)
            # Stopped, it cannot notice its pipe closing: only the lifeline can end it.
            os.kill(child, signal.SIGSTOP)
            parent.kill()
            parent.wait(30)
            _until(lambda: _gone(child), "the candidate ended with its parent", seconds=20)
        finally:
            if parent.poll() is None:
                parent.kill()
            if not _gone(child):  # so that a failing run leaves nothing behind either
                os.kill(child, signal.SIGKILL)


# -- promotion ----------------------------------------------------------------------------------


def _record(store_url: str, live: Sequence[str], shadow: Sequence[str], version: str) -> None:
    """Live decisions with the ``live`` labels, then ``version``'s answers for them."""
    ids = [new_id() for _ in live]
    decisions = [
        Decision(
            decision_id=i,
            report_id=f"r{n}",
            received_at=utc_now(),
            model_version="v1",
            source="Classify",
            label=label,
            confidence=0.9,
            scores={label: 0.9},
            needs_review=False,
            reasons=(),
            caller="test",
            latency_ms=1.0,
        )
        for n, (i, label) in enumerate(zip(ids, live, strict=True))
    ]
    shadows = [
        ShadowDecision(
            decision_id=i,
            model_version=version,
            scored_at=utc_now(),
            label=label,
            confidence=0.8,
            scores={label: 0.8},
            needs_review=False,
            reasons=(),
        )
        for i, label in zip(ids, shadow, strict=True)
    ]
    store = open_store(store_url)
    try:
        store.insert_decisions(decisions)
        store.insert_shadows(shadows)
    finally:
        store.close()


def test_promote_requires_shadow_evidence(
    models_dir: Path,
    tiny_result: TrainResult,
    store_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    write_artifact(models_dir, "v2", tiny_result.pipeline, tiny_result.card)
    promote = ["promote", "v2", "--models", str(models_dir), "--require-shadow", "5"]
    # Four of v2 (three agreeing) and plenty of another version's: not enough.
    _record(
        store_url,
        ["fraud", "fraud", "general", "general"],
        ["fraud", "fraud", "general", "x"],
        "v2",
    )
    _record(store_url, ["fraud"] * 6, ["fraud"] * 6, "v3")
    assert main([*promote, "--store", store_url]) == EXIT_NOT_PROMOTED
    out, err = capsys.readouterr()
    assert "needs 5 shadow decisions and has 4" in err
    assert "75.0% (3 of 4 with the same label)" in out
    assert resolve_current(models_dir) == (models_dir / "v1").resolve()
    # The fifth: promoted, the store found through TRIAGE_STORE this time.
    _record(store_url, ["cybercrime"], ["general"], "v2")
    assert main([*promote, "--min-agreement", "0.7"], env={"TRIAGE_STORE": store_url}) == (
        EXIT_NOT_PROMOTED
    )
    assert "agrees with the live model on 60.0% of 5" in capsys.readouterr().err
    assert main(promote, env={"TRIAGE_STORE": store_url}) == EXIT_OK
    assert "current -> v2 (was v1)" in capsys.readouterr().out
    assert resolve_current(models_dir) == (models_dir / "v2").resolve()


def test_promote_finds_no_evidence_in_a_store_that_does_not_exist(
    models_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nowhere" / "triage.db"
    code = main(
        ["promote", "v1", "--models", str(models_dir), "--require-shadow", "1"],
        env={"TRIAGE_STORE": f"sqlite:///{missing}"},
    )
    assert code == EXIT_NOT_PROMOTED
    assert "no shadow decisions of v1" in capsys.readouterr().out
    assert not missing.exists()  # asking created no store


def test_train_with_require_shadow_keeps_the_model_and_says_what_next(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "models"
    code = main(
        [
            *("train", "--data", str(TINY), "--test", str(TINY), "--out", str(out)),
            *("--version", "candidate", "--promote", "--require-shadow", "200"),
            *("--folds", "3", "--no-search", "--jobs", "1"),
            # The fairness gate on 48 rows is tested elsewhere (tests/test_fairness.py).
            *("--allow-fairness-flips", "1000", "--fairness-max-spread", "1"),
            *("--fairness-min-raise", "-1"),
        ]
    )
    printed = capsys.readouterr()
    assert code == EXIT_NOT_PROMOTED
    assert (out / "candidate").is_dir() and not (out / CURRENT).exists()
    assert f"triage serve --shadow {out / 'candidate'}" in printed.out
    assert "triage promote candidate --require-shadow 200" in printed.err
