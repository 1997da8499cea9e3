from hypothesis import given
from hypothesis import strategies as st

from triage.core.normalise import TextNormaliser, normalise_text


def test_nfkc_folds_compatibility_characters() -> None:
    assert normalise_text("ｆｕｌｌｗｉｄｔｈ ﬁle") == "fullwidth file"


def test_invisible_and_control_characters_go() -> None:
    assert normalise_text("bo\u200bmb\x07 threat\u00ad") == "bomb threat"


def test_web_clutter_lines_are_stripped_but_content_stays() -> None:
    scraped = "\n".join(
        [
            "Skip to main content",
            "We use cookies to improve your experience. Accept all cookies",
            "Man charged after courier fraud targeting pensioners",
            "Share this article",
            "Facebook | Twitter | WhatsApp",
            "Officers said the cookies he sold at the market were not involved.",
            "Related stories",
            "Have you got a story for us? Email the newsdesk",
            "Leave a comment",
        ]
    )
    assert normalise_text(scraped) == (
        "Man charged after courier fraud targeting pensioners "
        "Officers said the cookies he sold at the market were not involved."
    )


def test_length_is_capped() -> None:
    assert normalise_text("word " * 100, max_chars=20) == "word word word word "[:20]


def test_normaliser_is_a_stateless_pipeline_step() -> None:
    step = TextNormaliser(max_chars=5)
    assert step.fit(["ignored"]).transform(["  abcdefgh ", "ab\ncd"]) == ["abcde", "ab cd"]


@given(st.text(), st.integers(min_value=1, max_value=500))
def test_output_is_folded_and_capped(text: str, cap: int) -> None:
    out = normalise_text(text, max_chars=cap)
    assert len(out) <= cap
    assert "  " not in out and "\n" not in out
    assert out == out.lstrip()
