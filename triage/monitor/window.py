"""The span of time a quality report covers: decisions received in [since, until), in UTC."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta


def as_utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive datetime is taken to be UTC already (as the record's are)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@dataclass(frozen=True)
class Window:
    """Decisions received at or after ``since`` and before ``until`` (None: unbounded)."""

    since: datetime | None = None
    until: datetime | None = None

    def __post_init__(self) -> None:
        # The record stores UTC wall times (SQLite keeps no offset), so bounds are compared in
        # UTC too.
        if self.since is not None:
            object.__setattr__(self, "since", as_utc(self.since))
        if self.until is not None:
            object.__setattr__(self, "until", as_utc(self.until))

    @classmethod
    def recent(cls, span: timedelta, now: datetime | None = None) -> Window:
        """The last ``span`` up to ``now`` (default: the current time)."""
        end = as_utc(now) if now is not None else datetime.now(UTC)
        return cls(since=end - span, until=None)

    def describe(self) -> str:
        since = self.since.isoformat(timespec="seconds") if self.since else "the first one"
        until = f"before {self.until.isoformat(timespec='seconds')}" if self.until else "up to now"
        return f"decisions received from {since} {until}"

    def to_dict(self) -> dict[str, str | None]:
        return {
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
        }
