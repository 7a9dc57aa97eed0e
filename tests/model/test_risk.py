"""Breast risk: negative breasts are low, more suspicious findings rank higher."""

from __future__ import annotations

import pytest

from mammocad.model.results import ImageRef, ImageResult, Lesion, LesionClass
from mammocad.model.risk import aggregate, breast_risks, lesion_evidence


def result(lat: str, *lesions: tuple[float, float], error: str | None = None, view: str = "CC") -> ImageResult:
    ref = ImageRef(study_uid="1.2", series_uid="1.2.3", sop_instance_uid=f"1.2.3.{lat}{view}{len(lesions)}",
                   sop_class_uid="1.2.840.10008.5.1.4.1.1.1.2", laterality=lat, view=view, rows=100, columns=80)
    les = tuple(Lesion(box=(1, 1, 5, 5), lesion_class=LesionClass.MALIGNANT if p >= 0.5 else LesionClass.BENIGN,
                       probability_malignant=p, score=s) for p, s in lesions)
    return ImageResult(image=ref, lesions=les, error=error)


def test_negative_breast_is_low_and_not_called() -> None:
    risks = breast_risks([result("L"), result("L", view="MLO"), result("R", (0.9, 0.95))], threshold=0.5)
    by_side = {r.laterality: r for r in risks}
    assert by_side["L"].risk == 0.0 and not by_side["L"].malignant and by_side["L"].n_images == 2
    assert by_side["R"].malignant and by_side["R"].risk == pytest.approx(0.9 * 0.95)


def test_ordering_follows_the_most_suspicious_lesion() -> None:
    low = breast_risks([result("L", (0.2, 0.9), (0.3, 0.5))], threshold=0.5)[0]
    high = breast_risks([result("L", (0.8, 0.9)), result("L", (0.1, 0.4), view="MLO")], threshold=0.5)[0]
    assert high.risk > low.risk
    assert low.risk == pytest.approx(max(0.2 * 0.9, 0.3 * 0.5))


def test_same_lesion_in_two_views_is_not_double_counted_by_max() -> None:
    images = [result("R", (0.6, 0.9)), result("R", (0.6, 0.9), view="MLO")]
    assert breast_risks(images, threshold=0.5)[0].risk == pytest.approx(0.54)
    noisy = breast_risks(images, threshold=0.5, method="noisy_or")[0].risk
    assert noisy == pytest.approx(1 - (1 - 0.54) ** 2)


def test_failed_and_unknown_laterality_images_do_not_count() -> None:
    risks = breast_risks([result("L", (0.99, 0.99), error="decode failed"), result("", (0.9, 0.9))], threshold=0.5)
    assert risks == ()


def test_threshold_and_method_checks() -> None:
    assert breast_risks([result("L", (0.5, 1.0))], threshold=0.5)[0].malignant
    assert not breast_risks([result("L", (0.5, 0.99))], threshold=0.5)[0].malignant
    assert aggregate([]) == 0.0 and lesion_evidence(result("L", (0.5, 0.5)).lesions[0]) == 0.25
    with pytest.raises(ValueError, match="risk method"):
        aggregate([0.1], "mean")


def test_min_score_ignores_unreported_boxes() -> None:
    images = [result("L", (0.9, 0.3), (0.2, 0.8))]
    assert breast_risks(images, threshold=0.5)[0].risk == pytest.approx(0.27)
    assert breast_risks(images, threshold=0.5, min_score=0.5)[0].risk == pytest.approx(0.16)


def test_two_view_keeps_a_lesion_seen_on_both_views_and_halves_a_single_view_finding() -> None:
    both = [result("R", (0.6, 0.9)), result("R", (0.6, 0.9), view="MLO")]
    assert breast_risks(both, threshold=0.5, method="two_view")[0].risk == pytest.approx(0.54)
    one = [result("L", (0.9, 1.0), (0.2, 0.5)), result("L", view="MLO")]
    assert breast_risks(one, threshold=0.5, method="two_view")[0].risk == pytest.approx(0.45)
    assert breast_risks(one, threshold=0.5, method="max")[0].risk == pytest.approx(0.9)


def test_two_view_uses_the_two_most_suspicious_views_and_a_lone_view_alone() -> None:
    three = [result("L", (0.8, 1.0)), result("L", (0.6, 1.0), view="MLO"), result("L", view="ML")]
    assert breast_risks(three, threshold=0.5, method="two_view")[0].risk == pytest.approx(0.7)
    lone = [result("R", (0.7, 1.0))]
    assert breast_risks(lone, threshold=0.5, method="two_view")[0].risk == pytest.approx(0.7)
    assert breast_risks([result("R"), result("R", view="MLO")], threshold=0.5, method="two_view")[0].risk == 0.0


def test_two_view_ignores_unreported_boxes_per_view() -> None:
    images = [result("L", (0.9, 0.3), (0.5, 0.8)), result("L", (0.9, 0.35), view="MLO")]
    assert breast_risks(images, threshold=0.5, method="two_view", min_score=0.5)[0].risk == pytest.approx(0.2)
