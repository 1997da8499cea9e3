"""Shadow evidence for promotion: how many live decisions a candidate answered in shadow, and how
often it agreed with the live model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import case, func, select
from sqlalchemy.engine import make_url

from triage.core.errors import PromotionRefused
from triage.store import schema
from triage.store.database import describe, open_store
from triage.store.errors import StoreError


@dataclass(frozen=True)
class ShadowEvidence:
    """What the decision record holds about ``version`` as a shadow model."""

    version: str
    store: str  # the store's URL, without its password
    shadowed: int  # live decisions the candidate answered
    agreeing: int  # of those, how many with the live decision's label

    @property
    def agreement(self) -> float | None:
        """The share of shadowed decisions with the same label as the live one (None: none)."""
        return self.agreeing / self.shadowed if self.shadowed else None

    def summary(self) -> str:
        if not self.shadowed:
            return f"no shadow decisions of {self.version} in {self.store}"
        return (
            f"{self.shadowed} shadow decisions of {self.version} in {self.store}; agreement with "
            f"the live decisions they shadow: {self.agreement:.1%} "
            f"({self.agreeing} of {self.shadowed} with the same label)"
        )


def read_shadow_evidence(store_url: str, version: str) -> ShadowEvidence:
    """Count ``version``'s shadow decisions in the store at ``store_url`` and those whose label
    is the live decision's. A store that does not exist yet holds no evidence (and is not
    created by asking)."""
    shown = describe(store_url)
    if _missing_sqlite_file(store_url):
        return ShadowEvidence(version, shown, 0, 0)
    store = open_store(store_url, create=False)
    try:
        state = store.schema_state()
        if state.current is None:
            return ShadowEvidence(version, shown, 0, 0)
        if not state.up_to_date:
            raise StoreError(
                f"{shown} is at schema revision {state.current}, this triage needs {state.head}: "
                "run `triage store migrate --store URL`"
            )
        shadow, live = schema.shadow_decisions, schema.decisions
        same = case((shadow.c.label == live.c.label, 1), else_=0)
        query = (
            select(func.count(), func.coalesce(func.sum(same), 0))
            .select_from(shadow.join(live, shadow.c.decision_id == live.c.decision_id))
            .where(shadow.c.model_version == version)
        )
        with store.connect() as connection:
            shadowed, agreeing = connection.execute(query).one()
    finally:
        store.close()
    return ShadowEvidence(version, shown, int(shadowed), int(agreeing))


def require_shadow_evidence(
    evidence: ShadowEvidence, minimum: int, min_agreement: float | None = None
) -> None:
    """Refuse the promotion (:class:`PromotionRefused`) unless the candidate answered at least
    ``minimum`` live decisions in shadow and, if ``min_agreement`` is given, agreed with the live
    model on at least that share of them."""
    if evidence.shadowed < minimum:
        raise PromotionRefused(
            f"{evidence.version} needs {minimum} shadow decisions and has {evidence.shadowed} "
            f"({evidence.summary()}); serve it with --shadow until it has them"
        )
    agreement = evidence.agreement
    if min_agreement is not None and agreement is not None and agreement < min_agreement:
        raise PromotionRefused(
            f"{evidence.version} agrees with the live model on {agreement:.1%} of "
            f"{evidence.shadowed} shadowed decisions, below the required {min_agreement:.1%}"
        )


def _missing_sqlite_file(store_url: str) -> bool:
    try:
        parsed = make_url(store_url)
    except Exception:  # open_store explains a bad URL in its own words
        return False
    database = parsed.database or ""
    return (
        parsed.get_backend_name() == "sqlite"
        and database not in ("", ":memory:")
        and not Path(database).exists()
    )
