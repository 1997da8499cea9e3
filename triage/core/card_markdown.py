"""The model card for people: ``MODEL_CARD.md`` beside every artifact, rendered from the card.

The layout follows the usual model-card sections (Mitchell et al., 2019): details, intended
use, data, evaluation, fairness, limitations, and responsible use for police and public-safety
work. Every figure comes from the typed card, so the two can never disagree.
"""

from __future__ import annotations

from collections.abc import Mapping

from triage.core.card import FairnessFigures, ModelCard
from triage.core.evaluation import Evaluation

MARKDOWN_CARD_FILE = "MODEL_CARD.md"

_INTENDED_USE = """\
Triage support for people who handle public reports and police or public-safety releases: the
model suggests a desk (its labels, above) and flags uncertain answers for review, so that the
reports that matter most reach the right desk first. Every suggestion is reviewed by a person.

Out of scope: any decision about a person (suspicion, eligibility, risk, identity); scoring
text that is not a report (social-media monitoring, profiling of individuals or communities);
reports in languages other than English; use without the human review it is built around."""

_LIMITATIONS = """\
- It reads words only: it has no knowledge of the world, of the people a report names, or of
  anything outside the text. A high score is a statement about the wording of a report, never
  about its author or its subject.
- It learnt from the labelled corpus listed above (hand-written texts imitating public reports,
  releases and news, UK-flavoured); real input differs in ways the corpus does not cover.
- Short, vague, non-English or featureless texts get weak scores or the training base rates and
  go to review; a report with several concerns gets one label (all scores are returned).
- Names, faiths, places of worship, nationalities and languages are read as placeholders
  (`xxname`, `xxfaith`, `xxworship`, `xxorigin`) when the pipeline's normaliser says so
  (`identity_terms`): the model cannot tell one community from another, by design. Terms
  missing from its lists and seen in training keep what they learnt there; the suite's
  unlisted-name group checks names nobody listed."""

_RESPONSIBLE_USE = """\
- Keep a person in the loop: route on the suggestion, decide on the report.
- Never use a score as evidence against anyone named in a report.
- Watch the live figures (`triage monitor`): review rate, accuracy of accepted answers against
  reviewers' labels, drift of the label mix; and, where lawful, the share of reports sent to
  the counter-terrorism desk and the share overturned at review by the communities reports
  name. Reviewers' reports that an answer followed who a report names are incidents.
- Retrain with reviewers' corrections; promote only models that pass the fairness bounds, and
  treat any override of them (listed above) as a decision to be justified."""


def render_card(card: ModelCard) -> str:
    """The Markdown model card of ``card``."""
    t = card.training
    lines = [
        f"# Model card: triage {card.version}",
        "",
        "## Model details",
        "",
        f"- Version `{card.version}`, trained {t.created}, in {t.training_seconds:.0f} s.",
        f"- Candidate `{t.candidate}`: {t.candidate_summary}.",
        f"- Labels: {', '.join(f'`{label}`' for label in t.labels)}.",
        f"- Parameters: {_params(t.params)}; seed {t.seed}; {t.cv_folds}-fold cross-validation.",
        f"- Artifact `{card.artifact.file}` ({card.artifact.format}), sha256 "
        f"`{card.artifact.sha256}`.",
        f"- Libraries: {', '.join(f'{k} {v}' for k, v in sorted(t.libraries.items()))}.",
        "",
        "## Intended use",
        "",
        _INTENDED_USE,
        "",
        "## Training data",
        "",
        "| file | sha256 | rows | per label |",
        "|---|---|---|---|",
    ]
    files = t.data.files or (t.data.train,)
    for f in files:
        per_label = ", ".join(f"{k} {v}" for k, v in sorted(f.labels.items()))
        lines.append(f"| `{f.path}` | `{f.sha256[:12]}` | {f.rows} | {per_label} |")
    if t.data.set_aside:
        aside = ", ".join(f"{k} {v}" for k, v in sorted(t.data.set_aside.items()) if v)
        lines += ["", f"Rows set aside when combining files: {aside or 'none'}."]
    if t.data.test is not None:
        test = t.data.test
        lines += [
            "",
            f"Held-out test file: `{test.path}` ({test.rows} rows, `{test.sha256[:12]}`).",
        ]
    lines += ["", "## Evaluation", ""]
    lines += _evaluation("Cross-validation (out-of-fold)", t.metrics.cv)
    if t.metrics.test is not None:
        lines += _evaluation("Held-out test file", t.metrics.test)
    review = t.review
    bought = "nothing" if review.cv_precision is None else f"{review.cv_precision:.3f}"
    lines += [
        f"Needs-review threshold {review.threshold:.3f}, chosen on cross-validation for "
        f"{review.target_precision:.2f} precision of accepted answers (bought {bought}, "
        f"{review.cv_review_rate:.1%} sent to review).",
        "",
        "## Fairness",
        "",
    ]
    lines += _fairness(t.fairness)
    lines += [
        "## Limitations",
        "",
        _LIMITATIONS,
        "",
        "## Responsible use",
        "",
        _RESPONSIBLE_USE,
        "",
    ]
    return "\n".join(lines)


def _params(params: Mapping[str, object]) -> str:
    if not params:
        return "the candidate's defaults"
    return ", ".join(f"`{k.split('__')[-1]}={v}`" for k, v in sorted(params.items()))


def _evaluation(title: str, ev: Evaluation) -> list[str]:
    lines = [
        f"**{title}** (n={ev.n}): macro-F1 {ev.macro_f1:.3f}, accuracy {ev.accuracy:.3f}, "
        f"ECE {ev.ece:.3f}, log-loss {ev.log_loss:.3f}.",
        "",
        "| label | precision | recall | F1 | support |",
        "|---|---|---|---|---|",
    ]
    for label, s in ev.per_class.items():
        lines.append(f"| {label} | {s.precision:.3f} | {s.recall:.3f} | {s.f1:.3f} | {s.support} |")
    return [*lines, ""]


def _fairness(figures: FairnessFigures | None) -> list[str]:
    if figures is None:
        return ["The counterfactual fairness suite was not run for this model.", ""]
    verdict = "within" if figures.passed else "**outside**"
    lines = [
        f"Counterfactual suite {figures.suite} (`triage evaluate --fairness`): the same report "
        "with only a name, faith, place of worship, nationality or language swapped. "
        f"Label flips caused by a swap: {figures.flips} (allowed {figures.allowed_flips}); "
        f"worst spread of P(terrorism_concern) across swaps: {figures.max_spread:.3f} "
        f"(bound {figures.bound_max_spread:.3f}); directional failures (threat content must "
        f"raise P(terrorism_concern) by {figures.min_raise:.2f} for every name): "
        f"{figures.directional_failures}. The model is {verdict} its bounds.",
        "",
        "| swap group | mean P(terrorism_concern) | worst spread | flips |",
        "|---|---|---|---|",
    ]
    for g in figures.groups:
        lines.append(f"| {g.group} | {g.mean_terrorism:.3f} | {g.max_spread:.3f} | {g.flips} |")
    overrides = ", ".join(f"`{o}`" for o in figures.overrides) or "none"
    return [*lines, "", f"Bounds overridden at training: {overrides}.", ""]
