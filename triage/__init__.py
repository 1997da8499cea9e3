"""triage: sorts public reports and police releases into categories, with calibrated confidence."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Prediction", "TriageModel", "__version__", "load_model"]

if TYPE_CHECKING:
    from triage.core.model import Prediction, TriageModel, load_model


def __getattr__(name: str) -> Any:
    # Lazy, so `import triage` (and the CLI's --help) stays fast and scikit-learn loads on use.
    if name in ("Prediction", "TriageModel", "load_model"):
        from triage.core import model

        return getattr(model, name)
    raise AttributeError(f"module 'triage' has no attribute {name!r}")
