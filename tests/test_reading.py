"""What the served model says about what it was shown: review reasons, language, items of a
document of several, a runner-up, and where in the text its answer came from; through the
model, the gRPC service, the client, `triage classify` and `triage score --segments`."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from triage.archive.job import ScoreJob, run_score_job
from triage.archive.readers import ArchiveSpec
from triage.cli import main
from triage.client import TriageClient
from triage.core.model import (
    BELOW_THRESHOLD,
    MIXED_DOCUMENT,
    NEAR_TIE,
    NEAR_TIE_MARGIN,
    NO_EVIDENCE,
    NON_ENGLISH,
    REVIEW_REASONS,
    TriageModel,
)
from triage.rpc.app import TriageServer
from triage.v1 import triage_pb2 as pb
from triage.v1 import triage_pb2_grpc as pb_grpc

from .conftest import start_server

FOREIGN = {
    "pl": "Ktoś zadzwonił, podając się za pracownika banku, i kazał mi przelać oszczędności.",
    "zh": "我在火车站看到一个可疑的包，里面有电线，有人说要炸掉车站。",
    "ar": "رأيت رجلا يترك حقيبة فيها أسلاك بجانب مدخل المحطة ثم هرب مسرعا.",
}
# Three council news items, one about a hack: a page of several stories.
LISTING = "\n".join(
    [
        "Council news",
        "",
        "Library opening hours change over the holidays",
        "By Dana Whitlock",
        "03.02.2024",
        "The central library will close early on Christmas Eve and reopen in January with "
        "longer evening hours for students.",
        "",
        "Teenager arrested after school network hacked",
        "By Priya Osei",
        "02.02.2024",
        "A 16-year-old has been arrested on suspicion of computer misuse after the school "
        "network was broken into and pupils' records were copied.",
        "",
        "Bin collections move to Thursdays from March",
        "By Dana Whitlock",
        "01.02.2024",
        "Households on the east side of town will have their recycling and general waste "
        "collected on Thursdays from the first week of March.",
    ]
)
FRAUD = (
    "It was a lovely sunny day and I was in the garden with the dog. Then a man rang saying he "
    "was from my bank and told me to move my savings to a safe account, so I did. The dog was "
    "fine."
)


def test_a_report_in_another_language_is_flagged_with_its_language(
    tiny_model: TriageModel,
) -> None:
    for language, text in FOREIGN.items():
        (p,) = tiny_model.predict([text])
        assert p.language == language and p.needs_review
        assert NON_ENGLISH in p.review_reasons, p.review_reasons
        # It shares too little with what the model knows: the answer is the prior.
        assert p.review_reasons[0] == NO_EVIDENCE
        assert p.top_terms == () and p.evidence.sentences == ()
    (english,) = tiny_model.predict([FRAUD])
    assert english.language == "en" and NON_ENGLISH not in english.review_reasons


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.characters(categories=("Lo", "Nd", "So", "Zs", "Po")), max_size=300))
def test_no_text_without_known_words_is_ever_accepted(tiny_model: TriageModel, text: str) -> None:
    # Letters of scripts the model never saw, digits, symbols, spaces, punctuation.
    (p,) = tiny_model.predict([text or "·"])
    assert p.needs_review and NO_EVIDENCE in p.review_reasons
    np.testing.assert_allclose([s for _, s in sorted(p.scores)], sorted_rates(tiny_model))


def sorted_rates(model: TriageModel) -> list[float]:
    return [float(r) for _, r in sorted(zip(model.labels, model._base_rates, strict=True))]


def test_a_page_of_several_items_comes_back_item_by_item(tiny_model: TriageModel) -> None:
    (p,) = tiny_model.predict([LISTING])
    assert len(p.segments) == 3
    headlines = [LISTING[s.start : s.end].splitlines()[0] for s in p.segments]
    assert headlines == [
        "Library opening hours change over the holidays",
        "Teenager arrested after school network hacked",
        "Bin collections move to Thursdays from March",
    ]
    for item in p.segments:
        (alone,) = tiny_model.predict([LISTING[item.start : item.end]])
        assert (item.label, item.confidence) == (alone.label, pytest.approx(alone.confidence))
    # The document's scores are its items', weighted by length; it says when they disagree.
    lengths = np.array([s.end - s.start for s in p.segments], dtype=float)
    items = np.array([[dict(s.scores)[label] for label in tiny_model.labels] for s in p.segments])
    expected = lengths @ items / lengths.sum()
    assert [dict(p.scores)[label] for label in tiny_model.labels] == pytest.approx(expected)
    labels = {s.label for s in p.segments}
    assert (MIXED_DOCUMENT in p.review_reasons) == (len(labels) > 1)
    if len(labels) > 1:
        assert p.secondary_label and p.secondary_label != p.label


def test_reasons_come_in_their_documented_order_and_a_near_tie_names_the_runner_up(
    tiny_model: TriageModel,
) -> None:
    texts = [FRAUD, LISTING, *FOREIGN.values(), "hacked bank account scam money stolen"]
    for p in tiny_model.predict(texts):
        assert list(p.review_reasons) == [r for r in REVIEW_REASONS if r in p.review_reasons]
        assert p.needs_review == bool(p.review_reasons)
        (_, a), (second, b) = p.scores[:2]
        near = NO_EVIDENCE not in p.review_reasons and a - b <= NEAR_TIE_MARGIN
        assert (NEAR_TIE in p.review_reasons) == near
        if near:
            assert p.secondary_label == second
        assert (BELOW_THRESHOLD in p.review_reasons) == (a < tiny_model.review_threshold)


def test_evidence_points_into_the_text(tiny_model: TriageModel) -> None:
    (p,) = tiny_model.predict([FRAUD])
    assert p.evidence.sentences and p.evidence.terms
    top = FRAUD[p.evidence.sentences[0].start : p.evidence.sentences[0].end]
    assert "bank" in top and "safe account" in top
    for term in p.evidence.terms:
        assert " ".join(FRAUD[term.start : term.end].lower().split()) == term.term


@pytest.fixture
def server(models_dir: Path) -> Iterator[TriageServer]:
    running = start_server(models_dir)
    yield running
    running.stop(grace=0)


def test_the_service_and_the_client_carry_it_all(server: TriageServer) -> None:
    target = f"127.0.0.1:{server.port}"
    with grpc.insecure_channel(target) as channel:
        stub = pb_grpc.TriageServiceStub(channel)
        r = stub.Classify(pb.ClassifyRequest(text=FOREIGN["pl"], report_id="p"), timeout=10)
        assert r.language == "pl" and r.needs_review
        assert pb.REVIEW_REASON_NON_ENGLISH in r.review_reasons
        assert pb.REVIEW_REASON_NO_SIGNAL in r.review_reasons
        batch = stub.ClassifyBatch(
            pb.ClassifyBatchRequest(
                reports=[pb.ClassifyRequest(text=LISTING), pb.ClassifyRequest(text=FRAUD)]
            ),
            timeout=10,
        )
        listing, fraud = batch.results
        assert len(listing.segments) == 3 and listing.segments[1].end > listing.segments[1].start
        assert fraud.evidence_sentences and fraud.evidence_terms
    with TriageClient(target) as client:
        c = client.classify(LISTING)
        assert [LISTING[s.start : s.end].split("\n")[0] for s in c.segments][1].startswith(
            "Teenager arrested"
        )
        f = client.classify(FOREIGN["zh"])
        assert f.language == "zh" and {"NON_ENGLISH", "NO_SIGNAL"} <= set(f.review_reasons)


def test_triage_classify_prints_reasons_items_and_evidence(
    models_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = str(models_dir / "current")
    assert main(["classify", "--model", model, "--format", "json", LISTING]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert len(answer["segments"]) == 3 and answer["language"] == "en"
    assert set(answer["review_reasons"]) <= {
        "NO_SIGNAL",
        "NON_ENGLISH",
        "MIXED_DOCUMENT",
        "LOW_CONFIDENCE",
        "NEAR_TIE",
    }
    assert main(["classify", "--model", model, FOREIGN["pl"]]) == 0
    out = capsys.readouterr().out
    assert "needs human review: NO_SIGNAL, NON_ENGLISH" in out and "language: pl" in out


def test_score_segments_writes_one_row_per_item(models_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    with source.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "text"])
        writer.writerows([("page", LISTING), ("single", FRAUD)])
    out = tmp_path / "out.csv"
    run_score_job(ScoreJob(ArchiveSpec((str(source),)), out, models_dir / "current", segments=True))
    with out.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [(r["id"], r["segment"]) for r in rows] == [
        ("page", "0"),
        ("page", "1"),
        ("page", "2"),
        ("single", "0"),
    ]
    assert LISTING[int(rows[1]["start"]) : int(rows[1]["end"])].startswith("Teenager arrested")
    assert (int(rows[3]["start"]), int(rows[3]["end"])) == (0, len(FRAUD))
    assert {r["document_label"] for r in rows[:3]} == {rows[0]["document_label"]}
