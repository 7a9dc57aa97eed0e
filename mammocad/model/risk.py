"""Breast-level malignancy risk from the lesions of all views of that breast.

Per lesion the evidence is ``p_i · s_i``: the probability the box is malignant given it is a
lesion (``probability_malignant``) times the probability it is a lesion at all (``score``
= 1 − p(background)); that product is the box head's softmax probability of "malignant".

Rules (``method``; the checkpoint's ``DetectorSpec.risk_method`` says which one it uses):

* ``max``: the breast's risk is its most suspicious lesion's evidence, over all its views.
  It matches the reference study's rule (a breast is malignant when either view holds a
  malignant box above the threshold) and never counts one lesion twice.
* ``two_view``: per image, ``e_v`` = the evidence of its most suspicious lesion (0 when it
  has none); the breast's risk is the mean of its two largest ``e_v``, so a breast with
  CC and MLO scores ``(e_CC + e_MLO) / 2``. A breast with a single analysed image scores
  its ``e_v`` (the missing view cannot be held against it). Why: a real lesion is
  projected in both standard views, a false positive (overlapping tissue, noise) usually
  in one, and readers use exactly this two-view correlation to dismiss summation
  artefacts. A lesion seen in one view only still counts, at half weight. With the
  0.2.0-demo weights it lifted the ROC AUC of 160 validation breasts from 0.87 to 0.91
  (model card).
* ``noisy_or`` (1 − Π(1 − p_i·s_i)): for models calibrated on independent findings; the
  CC and MLO views usually show the *same* lesion twice, so it inflates two-view breasts.

Many faint false positives never add up to a malignant call under ``max`` or
``two_view``. A breast with images but no lesion has risk 0.

``min_score``: lesions below it are ignored. The Detector passes its reporting threshold
(``metadata["lesion_score_threshold"]``), so the breast risk always comes from findings that
are shown to the reader: a breast is never called malignant without a reported lesion.
"""

from __future__ import annotations

from collections.abc import Iterable

from mammocad.model.results import BreastRisk, ImageResult, Lesion

METHODS = ("max", "two_view", "noisy_or")


def lesion_evidence(lesion: Lesion) -> float:
    """p(malignant) of one box, in [0, 1]."""
    return min(1.0, max(0.0, lesion.probability_malignant * lesion.score))


def aggregate(evidence: Iterable[float], method: str = "max") -> float:
    """Combine evidence values into one risk in [0, 1] (0 for none).

    ``max`` and ``noisy_or`` take every lesion's evidence; ``two_view`` takes one value per
    analysed image (its strongest finding, 0 without one): :func:`combine_views` passes
    each rule what it needs.
    """
    values = [min(1.0, max(0.0, float(v))) for v in evidence]
    if method == "max":
        return max(values, default=0.0)
    if method == "two_view":
        top = sorted(values, reverse=True)[:2]
        return sum(top) / len(top) if top else 0.0
    if method == "noisy_or":
        keep = 1.0
        for v in values:
            keep *= 1.0 - v
        return 1.0 - keep
    raise ValueError(f"risk method must be one of {', '.join(METHODS)}, got {method!r}")


def combine_views(per_image: Iterable[Iterable[float]], method: str = "max") -> float:
    """One breast's risk from the lesion evidence of each of its analysed images."""
    images = [list(values) for values in per_image]
    if method == "two_view":
        return aggregate((max(values, default=0.0) for values in images), method)
    return aggregate((v for values in images for v in values), method)


def breast_risks(results: Iterable[ImageResult], *, threshold: float, method: str = "max",
                 min_score: float = 0.0) -> tuple[BreastRisk, ...]:
    """One BreastRisk per laterality (L first) that has at least one analysed image.

    Images with an error or an unknown laterality do not contribute (they are reported
    per image elsewhere); ``n_images`` counts the analysed images of that breast.
    """
    per_side: dict[str, list[ImageResult]] = {"L": [], "R": []}
    for result in results:
        if result.analysed and result.image.laterality in per_side:
            per_side[result.image.laterality].append(result)
    out = []
    for side, images in per_side.items():
        if not images:
            continue
        risk = combine_views(([lesion_evidence(les) for les in r.lesions if les.score >= min_score] for r in images),
                             method)
        out.append(BreastRisk(laterality=side, risk=risk, malignant=risk >= threshold, threshold=threshold,
                              n_images=len(images)))
    return tuple(out)
