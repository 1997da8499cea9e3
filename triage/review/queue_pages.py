"""The queue and item pages of the review desk, and the reviewer's actions on an item.

``GET /queue``: the needs-review queue (:mod:`triage.review.queue`), filtered by query
parameters ``reason``, ``label``, ``version``, ``from``, ``to`` and paged by ``page``.
``GET /item/<decision_id>``: one decision with its text, evidence marked, and its history.
``POST /item/<decision_id>/label`` (form: ``label``, ``note``), ``POST /item/<id>/skip`` and
``POST /undo`` act, then redirect (303) to the next item of the queue, the filters kept.

The session keeps the reviewer's last few actions (for Undo) and the decisions skipped, both
bounded: the session is a signed cookie, and a cookie holds about 4 KB.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from triage.review.evidence import Evidence, ModelShelf
from triage.review.queue import (
    PAGE_SIZE,
    InvalidFilter,
    QueueFilter,
    next_decision,
    parse_page,
    queue_page,
)
from triage.review.web import MAX_FORM_BYTES, account_of, desk_of, needs_account, page
from triage.store.crypto import TextCipher
from triage.store.database import Store
from triage.store.errors import InvalidFeedback, KeyProblem, StoreError, UnknownDecision
from triage.store.feedback import NOTE_CHARS, submit_feedback
from triage.store.records import DecisionView, Feedback
from triage.store.retention import read_text

log = logging.getLogger(__name__)

SKIPPED = "review_skipped"  # session: decision ids skipped, oldest first
ACTIONS = "review_actions"  # session: the last actions, latest last: ["label", id, feedback id]
MAX_SKIPPED = 25
MAX_ACTIONS = 8
EARLIER_DECISIONS = 20
UNDO_NOTE = "undo"
STORE_DOWN = "The decision record cannot be read just now; the log says why."
_DECISION_ID = re.compile(r"[A-Za-z0-9_-]{1,36}")


class BadRequest(Exception):
    """A request the page cannot take: ``status`` and a message for the reviewer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


# -- the queue ------------------------------------------------------------------------------


@needs_account()
async def queue_view(request: Request) -> Response:
    desk = desk_of(request)
    try:
        wanted = QueueFilter.from_params(request.query_params)
        number = parse_page(request.query_params.get("page"))
    except InvalidFilter as err:
        return _queue_page(request, QueueFilter(), status_code=400, problem=str(err))
    if desk.cipher is None:
        return _queue_page(request, wanted, no_key=True)
    try:
        result = await run_in_threadpool(
            queue_page, desk.store, desk.cipher, wanted, number, _skipped(request)
        )
    except StoreError as err:
        log.error("queue: cannot read the decision record: %s", err)
        return _queue_page(request, wanted, status_code=503, problem=STORE_DOWN)
    return _queue_page(request, wanted, queue=result)


def _queue_page(
    request: Request, wanted: QueueFilter, status_code: int = 200, **context: Any
) -> Response:
    params = wanted.params()
    return page(
        request,
        "queue.html",
        status_code=status_code,
        wanted=wanted,
        page_size=PAGE_SIZE,
        can_undo=bool(_actions(request)),
        undo_action=_with_query("/undo", params),
        item_href=lambda decision_id: item_href(decision_id, params),
        queue_href=lambda **changes: queue_href({**params, **changes}),
        **context,
    )


def queue_href(params: dict[str, Any]) -> str:
    kept = {key: str(value) for key, value in params.items() if value not in (None, "")}
    return _with_query("/queue", kept)


def item_href(decision_id: str, params: dict[str, str], action: str = "") -> str:
    path = f"/item/{quote(decision_id, safe='')}" + (f"/{action}" if action else "")
    return _with_query(path, params)


def _with_query(path: str, params: dict[str, str]) -> str:
    return f"{path}?{urlencode(params)}" if params else path


# -- one item -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemView:
    """Everything the item page shows of one decision."""

    view: DecisionView
    scores: tuple[tuple[str, float], ...]  # highest first
    secondary_label: str | None
    labels: tuple[str, ...]  # the model's order: the buttons, keys 1 to 9
    evidence: Evidence | None  # None: no text to show
    text_problem: str | None  # why the text is not shown
    earlier: tuple[DecisionView, ...]  # other decisions for the same report_id, newest first


@needs_account()
async def item_view(request: Request) -> Response:
    desk = desk_of(request)
    try:
        decision_id = _decision_id(request)
        wanted = _filters(request)
        item = await run_in_threadpool(
            build_item, desk.store, desk.cipher, _shelf(request), decision_id
        )
    except BadRequest as err:
        return _item_problem(request, err.status, str(err))
    except StoreError as err:
        log.error("item: cannot read the decision record: %s", err)
        return _item_problem(request, 503, STORE_DOWN)
    params = wanted.params()
    return page(
        request,
        "item.html",
        item=item,
        decision=item.view.decision,
        label_action=item_href(decision_id, params, "label"),
        skip_action=item_href(decision_id, params, "skip"),
        undo_action=_with_query("/undo", params),
        can_undo=bool(_actions(request)),
        back_href=queue_href(params),
        item_href=lambda other: item_href(other, params),
        note_chars=NOTE_CHARS,
    )


def build_item(
    store: Store, cipher: TextCipher | None, shelf: ModelShelf, decision_id: str
) -> ItemView:
    """Read the decision, its text and its report's other decisions; mark the evidence."""
    view = store.decision(decision_id)
    if view is None:
        raise BadRequest(404, "No recorded decision has this id.")
    decision = view.decision
    scores = tuple(sorted(decision.scores.items(), key=lambda item: (-item[1], item[0])))
    evidence: Evidence | None = None
    problem: str | None = None
    if cipher is None:
        problem = "Texts cannot be shown: the desk was started without the store's key."
    elif not view.has_text:
        problem = "The text of this report is not held (never kept, or past its retention)."
    else:
        try:
            text = read_text(store, cipher, decision_id)
        except KeyProblem as err:
            text, problem = None, f"The text cannot be opened: {err}"
        if text is None and problem is None:
            problem = "The text of this report has just expired."
        elif text is not None:
            evidence = shelf.evidence(decision.model_version, text)
    labels = evidence.labels if evidence is not None and evidence.labels else ()
    if not labels:  # the model is not loaded: its labels as the decision recorded them
        labels = tuple(sorted(decision.scores))
    earlier: tuple[DecisionView, ...] = ()
    if decision.report_id:
        earlier = tuple(
            other
            for other in store.decisions_for_report(decision.report_id, EARLIER_DECISIONS + 1)
            if other.decision.decision_id != decision_id
        )[:EARLIER_DECISIONS]
    return ItemView(
        view=view,
        scores=scores,
        secondary_label=scores[1][0] if len(scores) > 1 else None,
        labels=labels,
        evidence=evidence,
        text_problem=problem,
        earlier=earlier,
    )


def _item_problem(request: Request, status_code: int, message: str) -> Response:
    return page(
        request,
        "item.html",
        status_code=status_code,
        problem=message,
        back_href="/queue",
        can_undo=bool(_actions(request)),
        undo_action="/undo",
    )


# -- actions --------------------------------------------------------------------------------


@needs_account()
async def label_item(request: Request) -> Response:
    desk = desk_of(request)
    account = account_of(request)
    try:
        decision_id = _decision_id(request)
        wanted = _filters(request)
        form = await request.form(max_fields=50, max_part_size=MAX_FORM_BYTES)
        label = _field(form.get("label"), "label")
        note = _field(form.get("note"), "note").replace("\r\n", "\n")
        recorded = await run_in_threadpool(
            _record, desk.store, decision_id, label, note, account.name
        )
    except BadRequest as err:
        return _item_problem(request, err.status, str(err))
    except StoreError as err:
        log.error("label: cannot write to the decision record: %s", err)
        return _item_problem(request, 503, STORE_DOWN)
    log.info("%s labelled decision %s as %r", account.name, decision_id, label)
    _push_action(request, ["label", decision_id, recorded.feedback_id])
    _set_skipped(request, [d for d in _skipped(request) if d != decision_id])
    return await _to_next(request, wanted)


def _record(store: Store, decision_id: str, label: str, note: str, reviewer: str) -> Feedback:
    try:
        return submit_feedback(
            store,
            label=label,
            reviewer=reviewer,
            decision_id=decision_id,
            note=note,
            source="review",
            recorded_by=reviewer,
        )
    except UnknownDecision:
        raise BadRequest(404, "No recorded decision has this id.") from None
    except InvalidFeedback as err:
        raise BadRequest(400, str(err)) from None


@needs_account()
async def skip_item(request: Request) -> Response:
    try:
        decision_id = _decision_id(request)
        wanted = _filters(request)
    except BadRequest as err:
        return _item_problem(request, err.status, str(err))
    skipped = [d for d in _skipped(request) if d != decision_id] + [decision_id]
    _set_skipped(request, skipped[-MAX_SKIPPED:])
    _push_action(request, ["skip", decision_id])
    return await _to_next(request, wanted)


@needs_account()
async def undo(request: Request) -> Response:
    desk = desk_of(request)
    account = account_of(request)
    try:
        wanted = _filters(request)
    except BadRequest as err:
        return _item_problem(request, err.status, str(err))
    actions = _actions(request)
    if not actions:
        return RedirectResponse(queue_href(wanted.params()), status_code=303)
    action = actions[-1]
    kind, decision_id = action[0], action[1]
    if kind == "skip":
        _set_skipped(request, [d for d in _skipped(request) if d != decision_id])
    else:
        try:
            await run_in_threadpool(_restore, desk.store, decision_id, action[2], account.name)
        except BadRequest as err:  # cannot be undone: it leaves the stack
            request.session[ACTIONS] = actions[:-1]
            return _item_problem(request, err.status, str(err))
        except StoreError as err:  # it stays, to be tried again
            log.error("undo: cannot write to the decision record: %s", err)
            return _item_problem(request, 503, STORE_DOWN)
        log.info("%s undid their label of decision %s", account.name, decision_id)
    request.session[ACTIONS] = actions[:-1]
    return RedirectResponse(item_href(decision_id, wanted.params()), status_code=303)


def _restore(store: Store, decision_id: str, feedback_id: str, reviewer: str) -> Feedback:
    """Put back the label the decision had before ``feedback_id``, as a new feedback row;
    refused when someone labelled the decision since (their label stands)."""
    view = store.decision(decision_id)
    if view is None:
        raise BadRequest(404, "No recorded decision has this id.")
    undone = next((f for f in view.feedback if f.feedback_id == feedback_id), None)
    if undone is None:
        raise BadRequest(404, "The label to undo is not on record.")
    latest = view.feedback[-1]
    if latest.feedback_id != feedback_id:
        raise BadRequest(
            409,
            f"Not undone: {latest.reviewer} labelled this decision {latest.new_label!r} since.",
        )
    return _record(store, decision_id, undone.old_label, UNDO_NOTE, reviewer)


async def _to_next(request: Request, wanted: QueueFilter) -> Response:
    desk = desk_of(request)
    params = wanted.params()
    try:
        following = await run_in_threadpool(next_decision, desk.store, wanted, _skipped(request))
    except StoreError as err:
        log.error("next item: cannot read the decision record: %s", err)
        following = None
    target = item_href(following, params) if following else queue_href(params)
    return RedirectResponse(target, status_code=303)


# -- request parts and session --------------------------------------------------------------


def _decision_id(request: Request) -> str:
    value = request.path_params.get("decision_id", "")
    if not isinstance(value, str) or not _DECISION_ID.fullmatch(value):
        raise BadRequest(404, "No recorded decision has this id.")
    return value


def _filters(request: Request) -> QueueFilter:
    try:
        return QueueFilter.from_params(request.query_params)
    except InvalidFilter as err:
        raise BadRequest(400, str(err)) from None


def _field(value: object, name: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadRequest(400, f"{name} must be text, not a file")
    return value


def _skipped(request: Request) -> list[str]:
    value = request.session.get(SKIPPED)
    if not isinstance(value, list):
        return []
    return [d for d in value if isinstance(d, str)][-MAX_SKIPPED:]


def _set_skipped(request: Request, skipped: Sequence[str]) -> None:
    request.session[SKIPPED] = list(skipped)[-MAX_SKIPPED:]


def _actions(request: Request) -> list[list[str]]:
    value = request.session.get(ACTIONS)
    if not isinstance(value, list):
        return []
    return [
        a
        for a in value
        if isinstance(a, list)
        and all(isinstance(part, str) for part in a)
        and ((len(a) == 3 and a[0] == "label") or (len(a) == 2 and a[0] == "skip"))
    ][-MAX_ACTIONS:]


def _push_action(request: Request, action: list[str]) -> None:
    request.session[ACTIONS] = [*_actions(request), action][-MAX_ACTIONS:]


def _shelf(request: Request) -> ModelShelf:
    """The app's models, loaded once per version (made on first use, in the event loop's
    thread, so only one is ever made)."""
    shelf = getattr(request.app.state, "model_shelf", None)
    if not isinstance(shelf, ModelShelf):
        shelf = ModelShelf(Path(desk_of(request).models_dir))
        request.app.state.model_shelf = shelf
    return shelf


ROUTES: list[BaseRoute] = [
    Route("/queue", queue_view, methods=["GET"]),
    Route("/item/{decision_id}", item_view, methods=["GET"]),
    Route("/item/{decision_id}/label", label_item, methods=["POST"]),
    Route("/item/{decision_id}/skip", skip_item, methods=["POST"]),
    Route("/undo", undo, methods=["POST"]),
]
