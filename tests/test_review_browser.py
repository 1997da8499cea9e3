"""The review desk in a real browser (Debian's Chromium under Playwright) against a real
`triage review` over a store that a real `triage serve` filled: sign in, the queue in priority
order, keyboard-only relabelling and undo on record, filters, the dashboard, the refusals
without a session or a CSRF token, both window sizes, and no report text in any log.

Each run saves a screenshot of every page to docs/screenshots/ (the README shows them).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from playwright.sync_api import expect

from tests.browser import (
    NARROW,
    PASSWORD,
    REPORTS,
    REVIEWER,
    WIDE,
    Site,
    accepts_connections,
    chromium,
    desk_process,
    feedback_rows,
    margin,
    reasons_on_record,
    review_site,
    write_accounts,
    write_key_file,
)
from tests.stores import BACKENDS, store_url_for
from triage.store.database import open_store

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, StorageState, ViewportSize

pytestmark = pytest.mark.slow
SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
WAIT_MS = 15_000  # how long a page condition may take before the test fails


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module", params=BACKENDS)
def site(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    _models_template: Path,
) -> Iterator[Site]:
    work = tmp_path_factory.mktemp(f"desk-{request.param}")
    with (
        store_url_for(request.param, work) as store_url,
        review_site(_models_template, store_url, work) as running,
    ):
        yield running


@pytest.fixture(scope="module")
def session_state(site: Site, browser: Browser) -> StorageState:
    """The cookies of one signed-in session, so that each test's context starts signed in
    without paying for another argon2 verification."""
    context = browser.new_context(viewport=WIDE)
    try:
        page = context.new_page()
        sign_in(page, site.address)
        return context.storage_state()
    finally:
        context.close()


@pytest.fixture
def desk(site: Site, browser: Browser, session_state: StorageState) -> Iterator[Page]:
    """A page of a signed-in reviewer in a context of its own, at 1280x800."""
    context = browser.new_context(viewport=WIDE, storage_state=session_state)
    context.set_default_timeout(WAIT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


def sign_in(page: Page, address: str, then: str = "/queue") -> None:
    page.goto(f"{address}/login?next={then}")
    page.get_by_label("Name").fill(REVIEWER)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{address}{then}", timeout=WAIT_MS)


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def listed(page: Page) -> list[str]:
    """The decision ids the queue page lists, top to bottom."""
    page.get_by_role("heading", name="Review queue").wait_for()
    links = page.get_by_role("table").get_by_role("rowgroup").nth(1).get_by_role("link")
    return [href.rsplit("/", 1)[-1].split("?")[0] for href in _hrefs(links)]


def _hrefs(links: Any) -> list[str]:
    return [str(link.get_attribute("href")) for link in links.all()]


def expected_queue(site: Site, reason: str | None = None) -> list[str]:
    """What the queue should list now: answers that needed review, not labelled yet (under
    ``reason``), smallest margin first (ties by decision id, as the queue breaks them)."""
    labelled = {row.decision_id for row in feedback_rows(site.store_url)}
    reasons = reasons_on_record(site.store_url)
    waiting = [
        (margin(answer), decision_id)
        for decision_id, answer in site.answers.items()
        if answer.needs_review
        and decision_id not in labelled
        and (reason is None or reason in reasons[decision_id])
    ]
    return [decision_id for _, decision_id in sorted(waiting)]


def item_id(page: Page) -> str:
    return page.url.rsplit("/item/", 1)[1].split("?")[0].split("/")[0]


def relabel_by_keyboard(page: Page, site: Site) -> tuple[str, str]:
    """On an item page, choose a label other than the model's with its number key and confirm
    with Enter; returns (decision id, chosen label) once the desk has moved on."""
    decision_id = item_id(page)
    buttons = page.get_by_role("group", name="Choose the label").get_by_role("button")
    names = [b.get_attribute("value") or "" for b in buttons.all()]
    assert len(names) == 4, names  # the tiny model's label set, keys 1 to 4
    predicted = site.answers[decision_id].label
    position = next(i for i, name in enumerate(names) if name != predicted)
    page.keyboard.press(str(position + 1))
    expect(page.locator("#key-status")).to_contain_text(f"Chosen: {names[position]}")
    page.keyboard.press("Enter")
    page.wait_for_url(lambda url: decision_id not in url)
    return decision_id, names[position]


def test_the_desk_takes_connections_as_soon_as_it_says_it_serves(
    tmp_path: Path, _models_template: Path
) -> None:
    # Scripts (and these fixtures) connect the moment they read the "serving on" line.
    store_url = f"sqlite:///{tmp_path / 'record.db'}"
    open_store(store_url).close()
    desk = desk_process(
        _models_template,
        store_url,
        write_key_file(tmp_path / "store.key"),
        write_accounts(tmp_path / "accounts"),
        tmp_path / "review.log",
    )
    try:
        address = desk.serving_line()
        assert accepts_connections(address), "`serving on` was printed before the socket listened"
    finally:
        desk.stop()


def test_without_a_session_every_page_is_the_sign_in_page(site: Site, browser: Browser) -> None:
    context = browser.new_context(viewport=WIDE)
    context.set_default_timeout(WAIT_MS)
    try:
        page = context.new_page()
        some_item = next(iter(site.answers))
        for path in ("/queue", "/dashboard", f"/item/{some_item}"):
            response = page.goto(site.address + path)
            assert response is not None and response.ok
            assert page.url == f"{site.address}/login?next={path}"
            page.get_by_role("heading", name="Sign in").wait_for()
            assert page.get_by_role("table").count() == 0
            headers = response.headers
            assert "script-src 'self'" in headers["content-security-policy"]
            assert "unsafe-inline" not in headers["content-security-policy"]
            assert headers["cache-control"] == "no-store"
            assert headers["x-frame-options"] == "DENY"
        # Actions without a session: refused outright, nothing recorded.
        before = len(feedback_rows(site.store_url))
        refused = context.request.post(
            f"{site.address}/item/{some_item}/label", form={"label": "fraud"}, max_redirects=0
        )
        assert refused.status == 401
        assert len(feedback_rows(site.store_url)) == before

        page.goto(f"{site.address}/login?next=/dashboard")
        screenshot(page, "login")
        page.get_by_label("Name").fill(REVIEWER)
        page.get_by_label("Password").fill("not the password at all")
        page.get_by_role("button", name="Sign in").click()
        assert "Wrong name or password" in page.get_by_role("alert").inner_text()
        page.get_by_label("Name").fill(REVIEWER)  # the page does not keep the name
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{site.address}/dashboard")  # back where the reviewer was going
        page.get_by_role("heading", name="Live quality").wait_for()
    finally:
        context.close()


def test_the_queue_lists_what_needs_review_most_uncertain_first(desk: Page, site: Site) -> None:
    desk.goto(f"{site.address}/queue")
    shown = listed(desk)
    assert shown == expected_queue(site)
    assert len(shown) >= 7  # the store holds 10 to review; the other tests label 3
    sure = [d for d, answer in site.answers.items() if not answer.needs_review]
    assert sure and not set(sure) & set(shown)
    # The reviewer sees the reports themselves, and the margin the order comes from.
    rows = desk.get_by_role("table").get_by_role("rowgroup").nth(1).get_by_role("row")
    texts = {r.report_id: r.text for r in REPORTS if r.report_id != "unsure-2"}
    first = rows.first.inner_text()
    top = site.answers[shown[0]]
    assert f"{margin(top):.3f}" in first
    if top.report_id in texts:
        assert texts[top.report_id][:40] in first
    margins = [float(m) for m in rows.locator("td[data-label=Margin]").all_inner_texts()]
    assert margins == sorted(margins)
    screenshot(desk, "queue")


def test_the_queue_can_be_filtered_by_reason(desk: Page, site: Site) -> None:
    desk.goto(f"{site.address}/queue")
    desk.get_by_role("combobox", name="Reason").select_option("no_evidence")
    desk.get_by_role("button", name="Apply filters").click()
    desk.wait_for_url("**/queue?reason=no_evidence**")
    shown = listed(desk)
    assert shown == expected_queue(site, "no_evidence")
    assert shown and len(shown) < len(expected_queue(site))
    assert desk.get_by_role("combobox", name="Reason").input_value() == "no_evidence"
    # The counts link does the same.
    desk.get_by_role("link", name="below_threshold").click()
    desk.wait_for_url("**/queue?reason=below_threshold**")
    assert listed(desk) == expected_queue(site, "below_threshold")


def test_an_item_shows_its_report_evidence_scores_and_earlier_decisions(
    desk: Page, site: Site
) -> None:
    # The report sent twice: its later decision, which has an earlier one beside it.
    latest, earlier = (
        d for d, answer in reversed(site.answers.items()) if answer.report_id == "unsure-2"
    )
    desk.goto(f"{site.address}/item/{latest}")
    report = desk.get_by_label("Report text, evidence terms marked")
    text = next(r.text for r in reversed(REPORTS) if r.report_id == "unsure-2")
    assert report.inner_text() == text
    assert "card" in report.locator("mark").all_inner_texts()  # evidence marked in the text
    scores = desk.get_by_role("table", name="Scores").get_by_role("meter")
    assert scores.count() == 4
    shown = [float(m.get_attribute("value") or "nan") for m in scores.all()]
    assert shown == sorted(shown, reverse=True)
    answered = sorted((s.probability for s in site.answers[latest].scores), reverse=True)
    assert shown == pytest.approx(answered, abs=1e-3)
    others = desk.get_by_role("region", name="Other decisions for this report")
    assert [
        href.rsplit("/", 1)[-1].split("?")[0] for href in _hrefs(others.get_by_role("link"))
    ] == [earlier]
    screenshot(desk, "item")


def test_relabel_two_items_by_keyboard_undo_one_and_the_dashboard_follows(
    desk: Page, site: Site
) -> None:
    accuracy = (
        desk.get_by_role("region", name="Model v1")
        .get_by_role("listitem")
        .filter(has_text="All reviewed")
    )
    desk.goto(f"{site.address}/dashboard")
    before_dashboard = accuracy.inner_text()
    before = feedback_rows(site.store_url)

    # Keyboard only, in a filtered queue (the filter must stay on): focus the top item, Enter
    # opens it, a digit and Enter label it. (The top two are no_evidence; two more stay.)
    desk.goto(f"{site.address}/queue?reason=below_threshold")
    head = listed(desk)[0]
    desk.get_by_role("table").get_by_role("link").first.focus()
    desk.keyboard.press("Enter")
    desk.wait_for_url(f"**/item/{head}?reason=below_threshold")
    desk.get_by_role("button", name="Skip").wait_for()
    first, first_label = relabel_by_keyboard(desk, site)
    assert first == head
    # On to the next item of the same filtered queue.
    assert "/item/" in desk.url and desk.url.endswith("?reason=below_threshold")
    assert item_id(desk) == expected_queue(site, "below_threshold")[0]
    second, second_label = relabel_by_keyboard(desk, site)

    rows = feedback_rows(site.store_url)[len(before) :]
    assert [(r.decision_id, r.new_label, r.reviewer, r.source) for r in rows] == [
        (first, first_label, REVIEWER, "review"),
        (second, second_label, REVIEWER, "review"),
    ]
    assert [r.old_label for r in rows] == [site.answers[first].label, site.answers[second].label]
    assert first not in expected_queue(site) and second not in expected_queue(site)

    # U undoes the last label: a new row puts the model's label back, and the desk shows it.
    assert desk.get_by_role("button", name="Undo").is_enabled()
    desk.keyboard.press("u")
    desk.wait_for_url(f"**/item/{second}?reason=below_threshold")
    restoring = feedback_rows(site.store_url)[len(before) + 2 :]
    assert [(r.decision_id, r.old_label, r.new_label, r.reviewer) for r in restoring] == [
        (second, second_label, site.answers[second].label, REVIEWER)
    ]
    history = desk.get_by_role("region", name="Feedback on this decision")
    assert history.get_by_role("row").count() == 3  # header, the label, its undoing

    desk.goto(f"{site.address}/dashboard")
    after_dashboard = accuracy.inner_text()
    reviewed = len({r.decision_id for r in feedback_rows(site.store_url)})
    assert after_dashboard != before_dashboard
    assert f"n={reviewed})" in after_dashboard, after_dashboard
    screenshot(desk, "dashboard")


def test_actions_without_the_csrf_token_are_refused_and_not_recorded(
    desk: Page, site: Site
) -> None:
    # A decision of its own (the other tests label from the top of the queue).
    target = next(d for d, answer in site.answers.items() if answer.report_id == "unsure-5")
    desk.goto(f"{site.address}/item/{target}")
    token = desk.locator("body").get_attribute("data-csrf")
    assert token
    before = feedback_rows(site.store_url)
    label = next(name for name in ("general", "fraud") if name != site.answers[target].label)
    action = f"{site.address}/item/{target}/label"
    for refused in (
        desk.request.post(action, form={"label": label}, max_redirects=0),
        desk.request.post(
            action,
            form={"label": label},
            headers={"X-CSRF-Token": token[::-1]},
            max_redirects=0,
        ),
        desk.request.post(f"{site.address}/undo", form={}, max_redirects=0),
    ):
        assert refused.status == 403, refused.status
    assert feedback_rows(site.store_url) == before
    # The same request with the session's token is taken: the refusals were about the token.
    taken = desk.request.post(action, form={"label": label, "csrf": token}, max_redirects=0)
    assert taken.status == 303
    assert feedback_rows(site.store_url)[len(before) :][0].new_label == label


@pytest.mark.parametrize("size", [WIDE, NARROW], ids=["1280x800", "400x800"])
def test_the_pages_are_usable_in_a_wide_and_a_narrow_window(
    desk: Page, site: Site, size: ViewportSize
) -> None:
    desk.set_viewport_size(size)
    for path in ("/queue", "/dashboard"):
        desk.goto(site.address + path)
        assert _overflow(desk) <= 0, f"{path} scrolls sideways at {size['width']} px"
    desk.goto(f"{site.address}/queue")
    first_link = desk.get_by_role("table").get_by_role("link").first
    first_link.scroll_into_view_if_needed()
    assert first_link.is_visible()
    first_link.click()
    desk.get_by_role("button", name="Skip").wait_for()
    assert _overflow(desk) <= 0, f"the item page scrolls sideways at {size['width']} px"
    buttons = desk.get_by_role("group", name="Choose the label").get_by_role("button")
    assert buttons.count() == 4
    for button in buttons.all():
        button.scroll_into_view_if_needed()
        assert button.is_visible()
        box = button.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= size["width"]
    # From the top of the page, Tab reaches the first label button, and the focus shows.
    first = buttons.first
    for _ in range(40):
        desk.keyboard.press("Tab")
        if first.evaluate("button => button === document.activeElement"):
            break
    else:
        raise AssertionError("Tab never reached the first label button")
    outline = first.evaluate("button => getComputedStyle(button).outlineStyle")
    assert outline not in ("", "none"), outline


def test_no_page_breaks_its_content_security_policy_or_its_script(desk: Page, site: Site) -> None:
    problems: list[str] = []
    desk.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    desk.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    desk.add_init_script(
        "document.addEventListener('securitypolicyviolation', e => console.error("
        "'CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI))"
    )
    some_item = next(d for d, answer in site.answers.items() if answer.needs_review)
    for path in ("/login", "/queue", f"/item/{some_item}", "/dashboard"):
        desk.goto(site.address + path)
        desk.get_by_role("heading", level=1).first.wait_for()
    assert not problems, problems


def _overflow(page: Page) -> int:
    """How many pixels the page is wider than its window (0 or less: no sideways scrolling)."""
    return int(
        page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    )


def test_no_report_text_reaches_the_logs(desk: Page, site: Site) -> None:
    # Every page that shows a text is served once more, whichever tests ran before.
    desk.goto(f"{site.address}/queue")
    for decision_id in site.answers:
        desk.goto(f"{site.address}/item/{decision_id}")
        desk.get_by_role("heading", level=1).wait_for()
    logs = {"triage serve": site.serve.log_text(), "triage review": site.desk.log_text()}
    # The logs read are the live ones: they hold these requests and calls.
    assert all(f"GET /item/{d}" in logs["triage review"] for d in site.answers)
    assert logs["triage serve"].count('"rpc": "Classify"') == len(REPORTS)
    for name, log in logs.items():
        for report in REPORTS:
            assert report.text not in log, f"{name} logged the text of {report.report_id}"
            assert report.text[:24] not in log, f"{name} logged part of {report.report_id}"
