"""A small typed Python client for TriageService."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import grpc

from triage.v1 import triage_pb2 as pb
from triage.v1 import triage_pb2_grpc as pb_grpc


@dataclass(frozen=True)
class Classification:
    """The service's answer for one report (``error`` set when a batch item was refused)."""

    report_id: str
    label: str
    confidence: float
    scores: dict[str, float]
    needs_review: bool
    model_version: str
    explanation: list[tuple[str, float]]
    error: str | None = None
    decision_id: str = ""
    # Why it needs review: ReviewReason names without their prefix ("LOW_CONFIDENCE",
    # "NEAR_TIE", "NON_ENGLISH", "NO_SIGNAL", "MIXED_DOCUMENT"; "UNSPECIFIED" for a value this
    # client does not know yet).
    review_reasons: tuple[str, ...] = ()
    secondary_label: str = ""
    language: str = ""
    segments: tuple[SegmentAnswer, ...] = ()
    # (start, end, weight) of the sentences that pushed towards ``label``, in the text sent.
    evidence_sentences: tuple[tuple[int, int, float], ...] = ()
    # (term, start, end, weight): the terms, located in the text sent.
    evidence_terms: tuple[tuple[str, int, int, float], ...] = ()


@dataclass(frozen=True)
class SegmentAnswer:
    """One item of a document of several: ``text[start:end]`` and its own answer."""

    start: int
    end: int
    label: str
    confidence: float
    scores: dict[str, float]
    review_reasons: tuple[str, ...]


def _reasons(values: Iterable[int]) -> tuple[str, ...]:
    names = []
    for value in values:
        try:
            name = pb.ReviewReason.Name(value)
        except ValueError:  # a reason added after this client was built
            name = "REVIEW_REASON_UNSPECIFIED"
        names.append(name.removeprefix("REVIEW_REASON_"))
    return tuple(names)


class TriageClient:
    """``TriageClient("localhost:50051").classify("text")``; use as a context manager."""

    def __init__(
        self,
        target: str,
        timeout: float | None = 10.0,
        credentials: grpc.ChannelCredentials | None = None,
        metadata: Sequence[tuple[str, str]] = (),
    ) -> None:
        self.channel = (
            grpc.secure_channel(target, credentials)
            if credentials is not None
            else grpc.insecure_channel(target)
        )
        self.stub = pb_grpc.TriageServiceStub(self.channel)
        self.timeout = timeout
        self.metadata = tuple(metadata)

    def classify(
        self, text: str, report_id: str = "", explanation_terms: int = 5
    ) -> Classification:
        """Classify one report; raises ``grpc.RpcError`` with the server's status on refusal."""
        response = self.stub.Classify(
            pb.ClassifyRequest(
                text=text, report_id=report_id, max_explanation_terms=explanation_terms
            ),
            timeout=self.timeout,
            metadata=self.metadata,
        )
        return classification_of(response)

    def classify_batch(
        self,
        texts: Sequence[str],
        report_ids: Sequence[str] | None = None,
        explanation_terms: int = 5,
    ) -> list[Classification]:
        """Classify many reports in one call; results follow the input order."""
        ids = list(report_ids) if report_ids is not None else [str(i) for i in range(len(texts))]
        request = pb.ClassifyBatchRequest(
            reports=[
                pb.ClassifyRequest(text=t, report_id=i, max_explanation_terms=explanation_terms)
                for t, i in zip(texts, ids, strict=True)
            ]
        )
        response = self.stub.ClassifyBatch(request, timeout=self.timeout, metadata=self.metadata)
        return [classification_of(r) for r in response.results]

    def classify_stream(self, reports: Iterable[tuple[str, str]]) -> Iterator[Classification]:
        """Stream ``(report_id, text)`` pairs; yields answers as they come."""
        requests = (pb.ClassifyRequest(text=t, report_id=i) for i, t in reports)
        for response in self.stub.ClassifyStream(requests, metadata=self.metadata):
            yield classification_of(response)

    def model_info(self) -> pb.ModelInfo:
        info: pb.ModelInfo = self.stub.GetModelInfo(
            pb.GetModelInfoRequest(), timeout=self.timeout, metadata=self.metadata
        )
        return info

    def reload_model(self) -> pb.ReloadModelResponse:
        result: pb.ReloadModelResponse = self.stub.ReloadModel(
            pb.ReloadModelRequest(), timeout=self.timeout, metadata=self.metadata
        )
        return result

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> TriageClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def classification_of(r: pb.ClassifyResponse) -> Classification:
    """The typed answer a ClassifyResponse holds (also what `triage classify` prints from)."""
    return Classification(
        report_id=r.report_id,
        label=r.label,
        confidence=r.confidence,
        scores={s.label: s.probability for s in r.scores},
        needs_review=r.needs_review,
        model_version=r.model_version,
        explanation=[(e.term, e.weight) for e in r.explanation],
        error=r.error.message if r.HasField("error") else None,
        decision_id=r.decision_id,
        review_reasons=_reasons(r.review_reasons),
        secondary_label=r.secondary_label,
        language=r.language,
        segments=tuple(
            SegmentAnswer(
                start=s.start,
                end=s.end,
                label=s.label,
                confidence=s.confidence,
                scores={x.label: x.probability for x in s.scores},
                review_reasons=_reasons(s.review_reasons),
            )
            for s in r.segments
        ),
        evidence_sentences=tuple((s.start, s.end, s.weight) for s in r.evidence_sentences),
        evidence_terms=tuple((t.term, t.start, t.end, t.weight) for t in r.evidence_terms),
    )
