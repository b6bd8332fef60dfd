"""Findings and verdicts as values: reason kinds beside the words, one suspicion ranking,
and one headline rule that agrees with the images listed under it."""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
import pytest

from tests.analysis.test_triage import POLICY, prediction, series, volumes_series
from workstation.analysis.findings import (
    ReasonKind,
    SeriesVerdict,
    Verdict,
    by_suspicion,
    percent,
)
from workstation.analysis.run import verdict_document
from workstation.analysis.triage import (
    EMPTY_REASON,
    REGION_REASON,
    decide,
    series_verdict,
    slice_finding,
)


def kinds(verdict: SeriesVerdict) -> list[ReasonKind]:
    return list(verdict.reason_kinds)


# ------------------------------------------------------------------------ reason kinds
@pytest.mark.parametrize(("change", "kind"), [
    ({"foreground_fraction": 0.0}, ReasonKind.BLANK),
    ({"ct_score": 0.99}, ReasonKind.CT),
    ({"ood_score": 9.0}, ReasonKind.NOT_BRAIN),
    ({"reference_ood_score": 9.0}, ReasonKind.NOT_BRAIN),
    ({"mask": np.zeros((512, 128), np.float32)}, ReasonKind.TOO_LONG),
])
def test_each_refusal_has_its_kind_beside_its_words(change: dict[str, object],
                                                    kind: ReasonKind) -> None:
    policy = replace(POLICY, reference_ood_threshold=1.0)
    finding = slice_finding(0, "a.png", replace(prediction(), **change), policy, None)
    assert finding.verdict is Verdict.CANNOT_ASSESS
    assert finding.reason_kinds == (kind,) and len(finding.review_reasons) == 1
    assert finding.reasons[0].kind is kind and finding.reasons[0].text == finding.review_reasons[0]
    assert finding.has_reason(kind)


def test_review_kinds_of_an_image() -> None:
    low = slice_finding(0, "a", prediction(glioma=0.3), POLICY, None)
    region = slice_finding(1, "b", prediction(glioma=0.01, mask_at=(10, 10)), POLICY, None)
    empty = slice_finding(2, "c", prediction(), POLICY, None, empty=True)
    assert low.reason_kinds == (ReasonKind.LOW_CONFIDENCE,) and not low.heads_disagree
    assert region.reason_kinds == (ReasonKind.REGION_DISAGREES,) and region.heads_disagree
    assert empty.reason_kinds == (ReasonKind.EMPTY,)
    assert slice_finding(3, "d", prediction(glioma=0.9), POLICY, None).reasons == ()


def test_decisions_read_the_kind_never_the_words() -> None:
    """The same words under another kind decide nothing; other words under the kind do."""
    region = slice_finding(0, "a", prediction(glioma=0.01, mask_at=(10, 10)), POLICY, None)
    reworded = replace(region, review_reasons=("the heads disagree (reworded)",))
    assert reworded.heads_disagree
    mislabelled = replace(region, reason_kinds=(ReasonKind.LOW_CONFIDENCE,))
    assert REGION_REASON in mislabelled.review_reasons[0] and not mislabelled.heads_disagree
    normal = slice_finding(1, "b", prediction(), POLICY, None)
    tissue = [normal, normal, normal]
    # an image set aside as empty by its kind, whatever its words say
    empty = replace(slice_finding(2, "c", prediction(meningioma=0.4), POLICY, None,
                                  empty=True), review_reasons=("nothing there",))
    assert decide([*tissue, empty])[0] is Verdict.NO_TUMOUR
    worded = replace(slice_finding(2, "c", prediction(ood=9.0), POLICY, None),
                     review_reasons=(EMPTY_REASON,))
    assert decide([*tissue, worded])[0] is Verdict.REVIEW  # refused, not set aside


def test_reasons_and_kinds_must_pair_up() -> None:
    finding = slice_finding(0, "a", prediction(glioma=0.3), POLICY, None)
    with pytest.raises(ValueError):
        replace(finding, reason_kinds=())
    with pytest.raises(ValueError):
        replace(finding, reason_kinds=("low_confidence",))  # type: ignore[arg-type]


def test_each_series_reason_has_its_kind() -> None:
    def verdict_on(*preds: object, **kw: object) -> SeriesVerdict:
        return series_verdict(series(len(preds), **kw), list(preds), POLICY)  # type: ignore[arg-type]

    normal = prediction()
    assert kinds(verdict_on(normal, modality="CT")) == [ReasonKind.NOT_MR]
    assert kinds(verdict_on(normal, body_part="ABDOMEN")) == [ReasonKind.BODY_PART]
    assert kinds(series_verdict(volumes_series(phase_only=True), [], POLICY)) == [
        ReasonKind.NO_ANATOMICAL]
    assert kinds(verdict_on(normal, prediction(glioma=0.6), normal)) == [
        ReasonKind.SINGLE_TUMOUR_IMAGE]
    assert kinds(verdict_on(normal, prediction(glioma=0.3),
                            prediction(glioma=0.01, mask_at=(9, 9)), prediction(ood=9.0))) == [
        ReasonKind.LOW_CONFIDENCE, ReasonKind.REGION_DISAGREES, ReasonKind.SOME_UNASSESSABLE]
    assert kinds(verdict_on(*[prediction(ood=9.0)] * 3, modality=None, body_part=None)) == [
        ReasonKind.MOSTLY_UNASSESSABLE]
    assert kinds(series_verdict(series(3, levels=[0.0] * 3), [normal] * 3, POLICY)) in (
        [ReasonKind.NO_TISSUE], [ReasonKind.MOSTLY_UNASSESSABLE])
    assert decide([])[3][0].kind is ReasonKind.NO_IMAGES
    cleared = verdict_on(normal, normal)
    assert cleared.reasons == () and not cleared.has_reason(ReasonKind.LOW_CONFIDENCE)


# --------------------------------------------------------------------------- ranking
def test_one_ranking_tumour_then_review_then_the_rest() -> None:
    preds = [prediction(), prediction(glioma=0.3), prediction(glioma=0.85),
             prediction(glioma=0.95), prediction(glioma=0.02)]
    verdict = series_verdict(series(5), preds, POLICY)
    ranked = verdict.most_suspicious(None)
    assert [f.index for f in ranked] == [3, 2, 1, 4, 0]
    assert ranked == by_suspicion(verdict.findings)
    assert verdict.most_suspicious() == ranked[:3]


# -------------------------------------------------------------------------- headline
def glioma_top_pituitary_majority() -> SeriesVerdict:
    """The case a mean over the tumour images gets wrong: one image glioma > 99%, two
    images pituitary 80% (the mean of p(pituitary) over the three is the higher)."""
    preds = [prediction(), prediction(pituitary=0.8, glioma=0.05),
             prediction(glioma=0.9995), prediction(pituitary=0.8, glioma=0.05), prediction()]
    return series_verdict(series(5), preds, POLICY)


def test_the_headline_names_the_class_of_the_image_whose_numbers_it_quotes() -> None:
    verdict = glioma_top_pituitary_majority()
    top = verdict.most_suspicious(1)[0]
    assert verdict.verdict is Verdict.TUMOUR
    assert top.index == 2 and top.predicted_class == "glioma"
    assert verdict.strongest is top
    assert verdict.predicted_class == "glioma"
    assert verdict.confidence == pytest.approx(top.tumour_probability)
    assert verdict.class_probability == pytest.approx(top.probabilities["glioma"])
    assert verdict.headline == (
        "Tumour suspected (priority read): classes disagree: glioma on image 3 (>99%), "
        "pituitary on images 2, 4 (up to 80%); tumour probability >99%")
    document = verdict_document(verdict)  # the JSON says the same class
    assert (document["predicted_class"], document["confidence"]) == ("glioma", 0.9995)


def test_a_series_whose_tumour_images_agree_names_the_class_once() -> None:
    preds = [prediction(), prediction(meningioma=0.7, glioma=0.1),
             prediction(meningioma=0.85, pituitary=0.1)]
    verdict = series_verdict(series(3), preds, POLICY)
    assert verdict.headline == ("Tumour suspected (priority read): most likely meningioma "
                                "(85% on image 3); tumour probability 95%")


def test_the_headline_numbers_images_within_their_volume() -> None:
    s = volumes_series()  # volume 1 (time point 1) is read: global images 0-2
    preds = [prediction(glioma=0.9), prediction(glioma=0.95), prediction()]
    assert "(95% on image 2)" in series_verdict(s, preds, POLICY).headline


@pytest.mark.parametrize("seed", range(20))
def test_headline_and_ranking_agree_on_any_tumour_series(seed: int) -> None:
    """Whatever the images say: the first class the headline names is the verdict's class
    and the class of the first image the ranking lists, with that image's numbers."""
    rng = np.random.default_rng(seed)
    preds = []
    for _ in range(8):
        p = rng.dirichlet([0.6, 0.6, 0.6, 0.8])
        preds.append(prediction(glioma=p[0], meningioma=p[1], pituitary=p[2]))
    verdict = series_verdict(series(8), preds, POLICY)
    if verdict.verdict is not Verdict.TUMOUR:
        return
    top = verdict.most_suspicious(1)[0]
    name, number = top.predicted_class, top.index + 1
    named = re.search(r"(?:most likely|classes disagree:) (\w+)", verdict.headline)
    assert named is not None
    assert named.group(1) == verdict.predicted_class == name
    if "classes disagree" in verdict.headline:  # the top image among its class's images
        assert re.search(rf"disagree: {name} on images? ([0-9]+, )*{number}\b",
                         verdict.headline)
    else:
        assert f"({percent(top.probabilities[name])} on image {number})" in verdict.headline
    assert verdict.headline.endswith(f"tumour probability {percent(top.tumour_probability)}")
