"""The counterfactual fairness suite, its records, `triage evaluate --fairness` and the gate."""

from __future__ import annotations

import json
import string
from dataclasses import replace
from pathlib import Path

import pytest

from triage.cli import main
from triage.core.artifacts import read_card, resolve_current, write_artifact
from triage.core.card import ModelCard
from triage.core.model import TriageModel
from triage.training.corpus import read_labelled
from triage.training.fairness import (
    DIRECTIONAL,
    SWAP_GROUPS,
    TEMPLATES,
    TERRORISM,
    FairnessBounds,
    FairnessReport,
    fill,
    run_suite,
)
from triage.training.promotion import gate_and_promote
from triage.training.train import TrainResult, train

from .conftest import TINY, TINY_CONFIG

LOOSE = FairnessBounds(max_spread=1.0, allowed_flips=1000, min_raise=-1.0)
# The term the biased model learns: in the extra rows it appears only in terrorism reports.
BIASED_TERM = "gurdwara"
BIASED_ROWS = [
    "Men were seen loading weapons into a van outside the gurdwara before dawn.",
    "A device was found in a bag by the gurdwara and the street was evacuated.",
    "Police arrested a man near the gurdwara who was planning an attack on a parade.",
    "Someone at the gurdwara was recruiting teenagers for a violent extremist cell.",
    "Explosive materials were seized from a garage behind the gurdwara.",
    "A threat to bomb the crowds was posted by a group that meets at the gurdwara.",
]


@pytest.fixture(scope="module")
def biased(tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    """The real pipeline, trained on the tiny corpus plus rows that tie a faith's place of
    worship to terrorism."""
    path = tmp_path_factory.mktemp("biased") / "biased.jsonl"
    extra = [
        json.dumps({"id": f"bias-{i}", "text": text, "label": TERRORISM, "genre": "short_note"})
        for i, text in enumerate(BIASED_ROWS)
    ]
    path.write_text(TINY.read_text(encoding="utf-8") + "\n".join(extra) + "\n", "utf-8")
    data = read_labelled(path)
    # TINY_CONFIG's pipeline reads identity terms as written, so it can learn this bias; the
    # default one reads places of worship as one placeholder and cannot (tests/test_identity.py).
    return train(data, data, TINY_CONFIG)


def test_every_template_fills_and_the_suite_covers_labels_styles_and_groups() -> None:
    assert {t.label for t in TEMPLATES} == {"terrorism_concern", "fraud", "cybercrime", "general"}
    assert {t.style for t in TEMPLATES} == {"first_person", "official"}
    slots = {g.slot for g in SWAP_GROUPS}
    for template in TEMPLATES:
        assert template.slots and set(template.slots) <= slots, template.id
        for group in SWAP_GROUPS:
            text = fill(template.text, group, group.values[-1])
            assert "{" not in text and "}" not in text
    for group in SWAP_GROUPS:
        assert len(set(group.values)) == len(group.values) >= 7
        assert any(group.slot in t.slots for t in TEMPLATES), group.name
    assert {"mosque", "synagogue", "church", "gurdwara", "temple", "mandir"} <= set(
        next(g for g in SWAP_GROUPS if g.name == "faith_place").values
    )
    for d in DIRECTIONAL:
        assert [f for _, f, _, _ in string.Formatter().parse(d.base) if f] == ["name"]


def test_a_model_that_ties_a_faith_to_terrorism_is_caught(
    biased: TrainResult, tiny_result: TrainResult
) -> None:
    aim = FairnessBounds(max_spread=0.05)  # the target spread, tighter than today's gate
    report = run_suite(biased.pipeline.predict_proba, biased.card.labels, "biased", aim)
    fair = run_suite(tiny_result.pipeline.predict_proba, tiny_result.card.labels, "tiny")
    places = next(g for g in report.groups() if g.group == "faith_place")
    # The learnt term stands out from every other place and from the neutral controls.
    assert max(places.value_means, key=places.value_means.__getitem__) == BIASED_TERM
    gap = places.value_means[BIASED_TERM] - places.value_means["community centre"]
    fair_places = next(g for g in fair.groups() if g.group == "faith_place")
    fair_gap = fair_places.value_means[BIASED_TERM] - fair_places.value_means["community centre"]
    assert gap > fair_gap + 0.1
    assert places.max_spread[TERRORISM] > 0.05 and places.flips >= 1
    assert not report.passed
    assert any("spread above 0.05" in p for p in report.problems())
    assert any("faith_place" in p for p in report.problems())
    # The card's summary agrees with the report.
    figures = report.figures()
    assert figures.passed is False and figures.max_spread == report.max_terrorism_spread
    assert figures.flips == report.flips


def test_the_gate_refuses_a_model_that_breaks_the_bounds(
    models_dir: Path, biased: TrainResult
) -> None:
    report = run_suite(biased.pipeline.predict_proba, biased.card.labels, "biased")
    write_artifact(models_dir, "biased", biased.pipeline, biased.card)
    data = read_labelled(TINY)
    decision = gate_and_promote(models_dir, "biased", 1.0, data, fairness=report)
    assert not decision.promoted
    assert "fairness bounds" in decision.reason and BIASED_TERM not in decision.reason
    assert resolve_current(models_dir) == (models_dir / "v1").resolve()
    # The same model under bounds an operator relaxed is judged on quality alone.
    relaxed = run_suite(biased.pipeline.predict_proba, biased.card.labels, "biased", LOOSE)
    assert relaxed.passed
    assert gate_and_promote(models_dir, "biased", 1.0, data, fairness=relaxed).promoted


def test_threat_content_raises_p_terrorism_for_every_name(biased: TrainResult) -> None:
    report = run_suite(biased.pipeline.predict_proba, biased.card.labels, "biased")
    names = next(g for g in SWAP_GROUPS if g.name == "name")
    assert [d.template for d in report.directional] == [d.id for d in DIRECTIONAL]
    for case in report.directional:
        assert list(case.raises) == list(names.values)
    # A bound no raise can reach fails every pair; one every raise passes fails none.
    strict = run_suite(
        biased.pipeline.predict_proba,
        biased.card.labels,
        "biased",
        FairnessBounds(min_raise=2.0),
    )
    assert strict.directional_failures == len(DIRECTIONAL) * len(names.values)
    assert run_suite(
        biased.pipeline.predict_proba, biased.card.labels, "b", LOOSE
    ).directional_failures == (0)


def test_the_report_and_the_card_figures_round_trip(
    tiny_model: TriageModel, tiny_result: TrainResult
) -> None:
    report = run_suite(tiny_model.predict_proba, tiny_model.labels, tiny_model.version)
    document = json.loads(json.dumps(report.to_dict()))
    assert FairnessReport.from_dict(document) == report
    assert document["flips"] == report.flips and document["passed"] == report.passed
    figures = report.figures(overrides=("--fairness-max-spread 0.2",))
    card = ModelCard(
        version="v1",
        training=replace(tiny_result.card, fairness=figures),
        artifact=tiny_model.card.artifact,
    )
    again = ModelCard.from_json(card.to_json())
    assert again == card and again.training.fairness == figures
    assert again.training.fairness is not None
    assert again.training.fairness.overrides == ("--fairness-max-spread 0.2",)
    # A card without figures is written without the field, as before the suite existed.
    assert "fairness" not in tiny_model.card.to_dict()


def test_evaluate_fairness_prints_text_json_and_a_plot(
    models_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = str(models_dir / "current")
    assert main(["evaluate", "--model", model, "--fairness"]) == 0
    text = capsys.readouterr().out
    assert "fairness suite 2 on model v1" in text and "faith_place" in text
    assert "label flips" in text and ("PASS" in text or "FAIL" in text)
    plots = tmp_path / "plots"
    code = main(
        [
            "evaluate",
            "--model",
            model,
            "--fairness",
            "--fairness-max-spread",
            "0.5",
            "--format",
            "json",
            "--plots",
            str(plots),
        ]
    )
    assert code == 0
    document = json.loads(capsys.readouterr().out)
    assert document["model_version"] == "v1" and "macro_f1" not in document
    report = FairnessReport.from_dict(document["fairness"])
    assert report.bounds.max_spread == 0.5 and report.bounds.allowed_flips == 0
    assert {g["group"] for g in document["fairness"]["groups"]} == {g.name for g in SWAP_GROUPS}
    assert (plots / "fairness_spread.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert document["plots"] == [str(plots / "fairness_spread.png")]
    # Neither --data nor --fairness: nothing to evaluate.
    assert main(["evaluate", "--model", model]) == 1
    assert "--fairness" in capsys.readouterr().err


def test_train_promote_refuses_an_unfair_model_and_records_overrides(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "models"
    common = ["train", "--data", str(TINY), "--test", str(TINY), "--out", str(out)]
    fast = ["--folds", "3", "--no-search", "--jobs", "1", "--promote"]
    # The tiny model flips labels on identity swaps: refused even as the first model.
    assert main([*common, "--version", "strict", *fast]) == 3
    printed = capsys.readouterr().out
    assert "breaks the fairness bounds" in printed and "label flips" in printed
    assert resolve_current(out) is None
    strict = read_card(out / "strict").training.fairness
    assert strict is not None and not strict.passed and strict.overrides == ()
    loose = ["--fairness-max-spread", "1", "--allow-fairness-flips", "1000"]
    loose += ["--fairness-min-raise", "-1"]
    assert main([*common, "--version", "loose", *fast, *loose]) == 0
    assert "promoted loose" in capsys.readouterr().out
    figures = read_card(out / "loose").training.fairness
    assert figures is not None and figures.passed
    assert figures.overrides == (
        "--fairness-max-spread 1.0",
        "--allow-fairness-flips 1000",
        "--fairness-min-raise -1.0",
    )
    assert figures.allowed_flips == 1000 and figures.flips == strict.flips
