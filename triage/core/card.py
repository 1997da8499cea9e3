"""The model card record (``model.json``): what an artifact is, how it was made and scored."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from triage.core.errors import InvalidRecord
from triage.core.evaluation import Evaluation
from triage.core.json_fields import JsonFields, Scalar

# The schema version of model.json, the evaluations written inside it included. A reader
# refuses any other value rather than guess at a layout it does not know.
CARD_FORMAT = 1


@dataclass(frozen=True)
class ReviewThreshold:
    """The needs-review threshold, the precision it targets and what it bought on CV."""

    threshold: float
    target_precision: float
    cv_precision: float | None  # None: the threshold accepted nothing on CV
    cv_review_rate: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "target_precision": self.target_precision,
            "cv_precision": self.cv_precision,
            "cv_review_rate": self.cv_review_rate,
        }

    @classmethod
    def read(cls, fields: JsonFields) -> ReviewThreshold:
        return cls(
            threshold=fields.number("threshold"),
            target_precision=fields.number("target_precision"),
            cv_precision=fields.optional_number("cv_precision"),
            cv_review_rate=fields.number("cv_review_rate"),
        )


@dataclass(frozen=True)
class DataProvenance:
    """Which labelled file a model saw: its path and sha256, and its rows per label and genre."""

    path: str
    sha256: str
    rows: int
    labels: dict[str, int]
    genres: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "sha256": self.sha256,
            "rows": self.rows,
            "labels": dict(self.labels),
            "genres": dict(self.genres),
        }

    @classmethod
    def read(cls, fields: JsonFields) -> DataProvenance:
        return cls(
            path=fields.text("path"),
            sha256=fields.text("sha256"),
            rows=fields.integer("rows"),
            labels=fields.count_map("labels"),
            genres=fields.count_map("genres"),
        )


@dataclass(frozen=True)
class TrainingData:
    """The data a model was trained on, every training file it came from, and the test file.

    ``train`` describes the rows trained on. From one file, nothing left out, it is that file's
    provenance; combined from several, its path joins theirs with " + ", its sha256 is the
    sha256 of their sha256 digests (one per line, in order), and its counts are the rows kept.
    ``files`` is each training file as given and ``set_aside`` counts the rows left out when
    combining them (``duplicate``, ``overridden``, ``leaked``); both are None on cards written
    before training took several files, whose one file is ``train``.
    """

    train: DataProvenance
    test: DataProvenance | None
    files: tuple[DataProvenance, ...] | None = None
    set_aside: dict[str, int] | None = None

    @property
    def train_files(self) -> tuple[DataProvenance, ...]:
        """Every training file, on old cards and new."""
        return self.files if self.files is not None else (self.train,)

    def to_dict(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "train": self.train.to_dict(),
            "test": self.test.to_dict() if self.test else None,
        }
        if self.files is not None:  # an old card is written back as it was read
            document["train_files"] = [f.to_dict() for f in self.files]
            document["set_aside"] = dict(self.set_aside or {})
        return document

    @classmethod
    def read(cls, fields: JsonFields) -> TrainingData:
        test = fields.optional_child("test")
        names = fields.names()
        return cls(
            train=DataProvenance.read(fields.child("train")),
            test=DataProvenance.read(test) if test is not None else None,
            files=(
                tuple(DataProvenance.read(f) for f in fields.children("train_files"))
                if "train_files" in names
                else None
            ),
            set_aside=fields.count_map("set_aside") if "set_aside" in names else None,
        )


@dataclass(frozen=True)
class TrainingMetrics:
    """The out-of-fold cross-validation evaluation and, when there was a test file, its own."""

    cv: Evaluation
    test: Evaluation | None

    def to_dict(self) -> dict[str, Any]:
        return {"cv": self.cv.to_dict(), "test": self.test.to_dict() if self.test else None}

    @classmethod
    def read(cls, fields: JsonFields) -> TrainingMetrics:
        test = fields.optional_child("test")
        return cls(
            cv=Evaluation.read(fields.child("cv")),
            test=Evaluation.read(test) if test is not None else None,
        )


@dataclass(frozen=True)
class GridPoint:
    """One point of the hyper-parameter search and its cross-validated macro-F1."""

    params: dict[str, Scalar]
    macro_f1: float
    std: float  # across folds

    def to_dict(self) -> dict[str, Any]:
        return {"params": dict(self.params), "macro_f1": self.macro_f1, "std": self.std}

    @classmethod
    def read(cls, fields: JsonFields) -> GridPoint:
        return cls(
            params=fields.scalar_map("params"),
            macro_f1=fields.number("macro_f1"),
            std=fields.number("std"),
        )


@dataclass(frozen=True)
class FairnessGroupFigures:
    """One swap group of the fairness suite: mean and worst spread of P(terrorism), flips."""

    group: str
    mean_terrorism: float
    max_spread: float
    flips: int
    flipped: tuple[str, ...]  # the templates whose label the swap changes

    def to_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "mean_terrorism": self.mean_terrorism,
            "max_spread": self.max_spread,
            "flips": self.flips,
            "flipped": list(self.flipped),
        }

    @classmethod
    def read(cls, fields: JsonFields) -> FairnessGroupFigures:
        return cls(
            group=fields.text("group"),
            mean_terrorism=fields.number("mean_terrorism"),
            max_spread=fields.number("max_spread"),
            flips=fields.integer("flips"),
            flipped=fields.texts("flipped"),
        )


@dataclass(frozen=True)
class FairnessFigures:
    """The counterfactual fairness suite at training time, and the bounds the model was held to
    (``overrides``: the options an operator changed them with, as given; empty: defaults)."""

    suite: str
    flips: int
    max_spread: float  # of P(terrorism_concern) across swaps, on the worst template
    directional_failures: int
    bound_max_spread: float
    allowed_flips: int
    min_raise: float
    overrides: tuple[str, ...]
    groups: tuple[FairnessGroupFigures, ...]

    @property
    def passed(self) -> bool:
        return (
            self.flips <= self.allowed_flips
            and self.max_spread <= self.bound_max_spread
            and self.directional_failures == 0
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "flips": self.flips,
            "max_spread": self.max_spread,
            "directional_failures": self.directional_failures,
            "bound_max_spread": self.bound_max_spread,
            "allowed_flips": self.allowed_flips,
            "min_raise": self.min_raise,
            "overrides": list(self.overrides),
            "groups": [g.to_dict() for g in self.groups],
        }

    @classmethod
    def read(cls, fields: JsonFields) -> FairnessFigures:
        return cls(
            suite=fields.text("suite"),
            flips=fields.integer("flips"),
            max_spread=fields.number("max_spread"),
            directional_failures=fields.integer("directional_failures"),
            bound_max_spread=fields.number("bound_max_spread"),
            allowed_flips=fields.integer("allowed_flips"),
            min_raise=fields.number("min_raise"),
            overrides=fields.texts("overrides"),
            groups=tuple(FairnessGroupFigures.read(g) for g in fields.children("groups")),
        )


@dataclass(frozen=True)
class ScopeSettings:
    """What the model can read, as measured on its training texts: their language (ISO 639-1)
    and the smallest share of a report's words it must know (``triage.core.scope``)."""

    language: str
    min_known_share: float

    def to_dict(self) -> dict[str, Any]:
        return {"language": self.language, "min_known_share": self.min_known_share}

    @classmethod
    def read(cls, fields: JsonFields) -> ScopeSettings:
        return cls(
            language=fields.text("language"), min_known_share=fields.number("min_known_share")
        )


@dataclass(frozen=True)
class TrainingRecord:
    """How a model was made and scored: everything on its card but the artifact's identity."""

    created: str  # ISO 8601, UTC
    labels: tuple[str, ...]  # the classifier's classes, in its column order
    candidate: str
    candidate_summary: str
    params: dict[str, Scalar]  # the chosen hyper-parameters ({} for the candidate's defaults)
    seed: int
    cv_folds: int
    search: tuple[GridPoint, ...]  # empty when the grid was not searched
    review: ReviewThreshold
    data: TrainingData
    metrics: TrainingMetrics
    libraries: dict[str, str]  # name -> version, for the ones that decide how the pickle loads
    training_seconds: float
    # The fairness suite's figures; None on cards written before it existed.
    fairness: FairnessFigures | None = None
    # What the model can read; None on cards written before the scope check (serving then
    # uses triage.core.scope's defaults).
    scope: ScopeSettings | None = None

    def to_dict(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "created": self.created,
            "labels": list(self.labels),
            "candidate": self.candidate,
            "candidate_summary": self.candidate_summary,
            "params": dict(self.params),
            "seed": self.seed,
            "cv_folds": self.cv_folds,
            "search": [point.to_dict() for point in self.search],
            "review": self.review.to_dict(),
            "data": self.data.to_dict(),
            "metrics": self.metrics.to_dict(),
            "libraries": dict(self.libraries),
            "training_seconds": self.training_seconds,
        }
        if self.fairness is not None:  # a card without figures is written back as it was read
            document["fairness"] = self.fairness.to_dict()
        if self.scope is not None:
            document["scope"] = self.scope.to_dict()
        return document

    @classmethod
    def read(cls, fields: JsonFields) -> TrainingRecord:
        return cls(
            created=fields.text("created"),
            labels=fields.texts("labels"),
            candidate=fields.text("candidate"),
            candidate_summary=fields.text("candidate_summary"),
            params=fields.scalar_map("params"),
            seed=fields.integer("seed"),
            cv_folds=fields.integer("cv_folds"),
            search=tuple(GridPoint.read(point) for point in fields.children("search")),
            review=ReviewThreshold.read(fields.child("review")),
            data=TrainingData.read(fields.child("data")),
            metrics=TrainingMetrics.read(fields.child("metrics")),
            libraries=fields.text_map("libraries"),
            training_seconds=fields.number("training_seconds"),
            fairness=(
                FairnessFigures.read(fields.child("fairness"))
                if "fairness" in fields.names()
                else None
            ),
            scope=ScopeSettings.read(fields.child("scope")) if "scope" in fields.names() else None,
        )


# How the pipeline file is saved (the card's artifact.format).
SKOPS = "skops"  # skops.io: loads without running code, constructing only trusted types
# A joblib pickle, which runs whatever code it names when loaded: every card written before
# the artifact format was recorded (they have no artifact.format field) describes one.
LEGACY_PICKLE = "joblib"


@dataclass(frozen=True)
class ArtifactFile:
    """The saved pipeline beside the card: its file, the sha256 it must have, its format."""

    file: str
    sha256: str
    format: str = SKOPS

    def to_dict(self) -> dict[str, Any]:
        document = {"file": self.file, "sha256": self.sha256}
        if self.format != LEGACY_PICKLE:  # a legacy card is written back as it was read
            document["format"] = self.format
        return document

    @classmethod
    def read(cls, fields: JsonFields) -> ArtifactFile:
        return cls(
            file=fields.text("file"),
            sha256=fields.text("sha256"),
            format=fields.text("format") if "format" in fields.names() else LEGACY_PICKLE,
        )


@dataclass(frozen=True)
class ModelCard:
    """The card of one artifact: its version, how it was made and scored, and its file."""

    version: str
    training: TrainingRecord
    artifact: ArtifactFile

    @property
    def labels(self) -> tuple[str, ...]:
        return self.training.labels

    @property
    def created(self) -> str:
        return self.training.created

    @property
    def review_threshold(self) -> float:
        return self.training.review.threshold

    def to_dict(self) -> dict[str, Any]:
        # The key order is the one every card has been written in, so cards diff cleanly.
        return {
            "format": CARD_FORMAT,
            "version": self.version,
            **self.training.to_dict(),
            "artifact": self.artifact.to_dict(),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, document: object) -> ModelCard:
        """The card in ``document``; :class:`InvalidRecord` names a missing or bad field, or a
        format this code does not read."""
        fields = JsonFields(document)
        card_format = fields.integer("format")
        if card_format != CARD_FORMAT:
            upgrade = ": upgrade triage to load this model" if card_format > CARD_FORMAT else ""
            raise InvalidRecord(
                "format", f"is {card_format}, but this triage reads format {CARD_FORMAT}{upgrade}"
            )
        return cls(
            version=fields.text("version"),
            training=TrainingRecord.read(fields),
            artifact=ArtifactFile.read(fields.child("artifact")),
        )

    @classmethod
    def from_json(cls, text: str) -> ModelCard:
        """The card in JSON ``text`` (``ValueError`` if it is not JSON), as :meth:`from_dict`."""
        return cls.from_dict(json.loads(text))
