"""A model object is safe to call twice, and from two threads: no state between forward passes.

The ROI heads used to hand each box's softmax vector from ``postprocess_detections`` to
``forward`` through an attribute; a second call (another thread, or a call interleaved
by a hook) then read the first call's vectors. Now they travel as return values.
"""

from __future__ import annotations

import threading

import torch

from mammocad.model.detector import DetectorSpec, build_detector

SPEC = DetectorSpec(backbone="resnet18", tile_size=128, tile_overlap=16, detections_per_img=20,
                    box_head_size=64, rpn_pre_nms_top_n_test=100, rpn_post_nms_top_n_test=30,
                    box_score_thresh=0.0)


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_detector(SPEC)
    model.eval()
    return model


def _images() -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return [torch.rand(3, 128, 128, generator=gen), torch.rand(3, 128, 128, generator=gen) * 0.3]


def _run(model: torch.nn.Module, image: torch.Tensor) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        return model([image])[0]  # type: ignore[no-any-return]


def test_class_probs_belong_to_their_own_boxes_across_calls() -> None:
    model = _model()
    first, second = (_run(model, image) for image in _images())
    assert len(first["boxes"]) > 0 and len(second["boxes"]) > 0  # else the test checks nothing
    for out in (first, second):
        assert out["class_probs"].shape == (len(out["boxes"]), SPEC.num_classes)
        torch.testing.assert_close(1.0 - out["class_probs"][:, 0], out["scores"])
    assert not any(isinstance(v, list) for v in vars(model.roi_heads).values() if not callable(v))


def test_two_threads_get_the_same_answers_as_one() -> None:
    model = _model()
    images = _images()
    expected = [_run(model, image) for image in images]
    barrier = threading.Barrier(2)
    failures: list[str] = []

    def worker(i: int) -> None:
        barrier.wait()
        for _ in range(5):
            got = _run(model, images[i])
            for key in ("boxes", "scores", "class_probs"):
                # Equal up to float reduction order (threads share the intra-op pool).
                if got[key].shape != expected[i][key].shape or \
                        not torch.allclose(got[key], expected[i][key], rtol=1e-4, atol=1e-4):
                    failures.append(f"thread {i}: {key} differs")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
