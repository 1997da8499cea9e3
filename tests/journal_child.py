"""A process that records decisions for ever, for the kill -9 test: it prints each decision id
only after ``record`` returned, as a server answers a call only after recording it.

Usage: python -m tests.journal_child STORE_URL SPOOL_DIR SEGMENT_BYTES [FLUSH_SECONDS]

FLUSH_SECONDS: how often the journal's writer process looks for new records; a long one leaves
a backlog at the kill for certain (the writer runs beside the recording loop, not in its way).
"""

from __future__ import annotations

import sys
from pathlib import Path

from triage.core.model import Prediction
from triage.store.database import open_store
from triage.store.journal import DecisionJournal
from triage.store.records import Decision

PREDICTION = Prediction(
    label="fraud",
    confidence=0.8,
    scores=(("fraud", 0.8), ("general", 0.2)),
    needs_review=False,
    top_terms=(),
    model_version="child",
)


def main(argv: list[str]) -> None:
    url, spool, segment_bytes = argv[0], Path(argv[1]), int(argv[2])
    flush_seconds = float(argv[3]) if len(argv) > 3 else 0.05
    store = open_store(url)
    journal = DecisionJournal(
        store, spool, segment_bytes=segment_bytes, flush_seconds=flush_seconds
    ).start()
    out = sys.stdout
    out.write("started\n")
    out.flush()
    number = 0
    while True:
        decision = Decision.of(PREDICTION, report_id=f"r{number}", source="Classify")
        journal.record([decision])
        out.write(decision.decision_id + "\n")  # acknowledged
        out.flush()
        number += 1


if __name__ == "__main__":
    main(sys.argv[1:])
