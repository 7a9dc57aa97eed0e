"""Breast-level malignancy risk from the lesions of all views of that breast.

Per lesion the evidence is ``p_i · s_i``: the probability the box is malignant given it is a
lesion (``probability_malignant``) times the probability it is a lesion at all (``score``
= 1 − p(background)); that product is the box head's softmax probability of "malignant".

Default rule, ``max``: the breast's risk is its most suspicious lesion's evidence.
Chosen because the CC and MLO views usually show the *same* lesion twice (a noisy-OR would
count it twice and inflate every two-view breast), because many faint false positives must
not add up to a malignant call, and because it matches the reference study's rule (a
breast is malignant when either view holds a malignant box above the threshold).
``noisy_or`` (1 − Π(1 − p_i·s_i)) is available for models calibrated on independent
findings. A breast with images but no lesion has risk 0.

``min_score``: lesions below it are ignored. The Detector passes its reporting threshold
(``metadata["lesion_score_threshold"]``), so the breast risk always comes from findings that
are shown to the reader: a breast is never called malignant without a reported lesion.
"""

from __future__ import annotations

from collections.abc import Iterable

from mammocad.model.results import BreastRisk, ImageResult, Lesion

METHODS = ("max", "noisy_or")


def lesion_evidence(lesion: Lesion) -> float:
    """p(malignant) of one box, in [0, 1]."""
    return min(1.0, max(0.0, lesion.probability_malignant * lesion.score))


def aggregate(evidence: Iterable[float], method: str = "max") -> float:
    """Combine per-lesion evidence into one risk in [0, 1] (0 for no lesions)."""
    values = [min(1.0, max(0.0, float(v))) for v in evidence]
    if method == "max":
        return max(values, default=0.0)
    if method == "noisy_or":
        keep = 1.0
        for v in values:
            keep *= 1.0 - v
        return 1.0 - keep
    raise ValueError(f"risk method must be one of {', '.join(METHODS)}, got {method!r}")


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
        risk = aggregate((lesion_evidence(les) for r in images for les in r.lesions if les.score >= min_score),
                         method)
        out.append(BreastRisk(laterality=side, risk=risk, malignant=risk >= threshold, threshold=threshold,
                              n_images=len(images)))
    return tuple(out)
