"""The pipeline file format: skops bytes that load constructing only the types listed here."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from typing import Any

import skops.io as sio
from sklearn.calibration import CalibratedClassifierCV, _CalibratedClassifier, _SigmoidCalibration
from sklearn.feature_extraction.text import TfidfTransformer
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import ComplementNB
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.svm import LinearSVC

from triage.core.errors import ModelLoadError
from triage.core.features import CachedTfidfVectorizer
from triage.core.normalise import TextNormaliser


def _type_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


# Every class a candidate pipeline is built of, and nothing else. skops itself trusts any
# scikit-learn estimator; this list is narrower on purpose: a model file can only ever hold
# these, so anything else in one was not written by `triage train`. A new candidate that uses
# another class adds it here (tests/test_artifacts.py round-trips every candidate).
TRUSTED_TYPES: frozenset[str] = frozenset(
    _type_name(cls)
    for cls in (
        Pipeline,
        FeatureUnion,
        TextNormaliser,
        CachedTfidfVectorizer,
        TfidfTransformer,
        LogisticRegression,
        LinearSVC,
        ComplementNB,
        CalibratedClassifierCV,
        _CalibratedClassifier,
        _SigmoidCalibration,
        IsotonicRegression,
    )
)
# skops node kinds that hold plain data (containers, numbers, strings, numpy and scipy arrays,
# references to a node already read); skops audits their types itself. Every other kind of node
# makes an object of the type it names, which must then be in TRUSTED_TYPES.
_DATA_NODES = frozenset(
    {
        "DictNode",
        "ListNode",
        "TupleNode",
        "SetNode",
        "JsonNode",
        "NdArrayNode",
        "SparseMatrixNode",
        "CachedNode",
    }
)
# A TypeNode is any module attribute by name (skops saves a builtin function such as os.system
# as one): the pipelines name only these, as a vectoriser's dtype and a dict's key type.
_TYPE_NODE = "TypeNode"
_PLAIN_TYPES = frozenset(
    {
        "builtins.str",
        "builtins.int",
        "builtins.float",
        "builtins.bool",
        "numpy.float32",
        "numpy.float64",
        "numpy.int32",
        "numpy.int64",
    }
)
_SCHEMA = "schema.json"


def pipeline_to_bytes(pipeline: Pipeline) -> bytes:
    """The fitted ``pipeline`` as a skops file."""
    return sio.dumps(pipeline)


def pipeline_from_bytes(data: bytes, name: str) -> Pipeline:
    """Load the pipeline in the skops file ``data``; ``name`` (e.g. "model v2") names it in errors.

    The file's types are checked before anything is made: skops's own audit
    (``get_untrusted_types``) and every object the file would construct must be in
    :data:`TRUSTED_TYPES`, or :class:`ModelLoadError` names the types and nothing is loaded.
    Nothing here unpickles: skops makes trusted objects and fills in their plain-data state.
    """
    schema = _schema(data, name)
    untrusted = sorted(_untrusted_by_skops(data, name) | _untrusted_objects(schema))
    if untrusted:
        raise ModelLoadError(
            f"refusing to load {name}: it holds types that a triage model never contains "
            f"({', '.join(untrusted)}); it was not written by `triage train`"
        )
    try:
        loaded: Any = sio.loads(data, trusted=sorted(TRUSTED_TYPES))
    except Exception as err:  # a corrupt file: whatever skops or numpy raised reading it
        raise ModelLoadError(
            f"refusing to load {name}: its skops file is damaged ({type(err).__name__})"
        ) from None
    if not isinstance(loaded, Pipeline):
        raise ModelLoadError(f"{name} holds a {type(loaded).__name__}, not a Pipeline")
    return loaded


def _schema(data: bytes, name: str) -> object:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return json.loads(archive.read(_SCHEMA))
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, RecursionError):
        raise ModelLoadError(
            f"refusing to load {name}: it is not a skops file (a pickle, or damaged)"
        ) from None


def _untrusted_by_skops(data: bytes, name: str) -> set[str]:
    try:
        found = sio.get_untrusted_types(data=data)
    except Exception as err:  # a schema skops cannot even walk
        raise ModelLoadError(
            f"refusing to load {name}: its skops file is damaged ({type(err).__name__})"
        ) from None
    return set(found) - TRUSTED_TYPES


def _untrusted_objects(schema: object) -> set[str]:
    found = set()
    for node in _nodes(schema):
        loader = node.get("__loader__")
        if isinstance(loader, str) and loader in _DATA_NODES:
            continue
        type_name = f"{node.get('__module__')}.{node.get('__class__')}"
        allowed = TRUSTED_TYPES | _PLAIN_TYPES if loader == _TYPE_NODE else TRUSTED_TYPES
        if type_name not in allowed:
            found.add(type_name[:200])  # a name is echoed in the error: keep it short
    return found


def _nodes(value: object) -> Iterator[dict[str, Any]]:
    """Every node of a skops schema: each JSON object with a ``__loader__`` key, at any depth.

    Any object with that key counts, even inside a node's content, so a file cannot hide a node
    from this check by where it puts it (at worst a harmless object is refused)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "__loader__" in item:
                yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
