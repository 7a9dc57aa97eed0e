"""A model object is safe to call twice, and from two threads: no state between forward passes.

The ROI heads used to hand each box's softmax vector from ``postprocess_detections`` to
``forward`` through an attribute; a second call (another thread, or a call interleaved
by a hook) then read the first call's vectors. Now they travel as return values.

Tiling used to switch the model's own transform and RPN budgets to each call's tile size for
the length of the call; a call on a small image that overlapped one on a large image shrank
the large image's tiles. Now each call runs a view of the model with its own settings.
"""

from __future__ import annotations

import threading

import numpy as np
import torch

from mammocad.model.detector import DetectorSpec, build_detector
from mammocad.model.tiling import detect_tiled

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


def test_overlapping_calls_on_images_of_different_sizes_each_keep_their_tile_size() -> None:
    """The large image's call is held at the network's input until the small image's call is inside
    the network too (hooks on the shared transform), the interleaving two worker threads can hit."""
    spec = DetectorSpec(backbone="resnet18", tile_size=128, tile_overlap=16, inference_tile_size=256,
                        detections_per_img=20, box_head_size=64, rpn_pre_nms_top_n_test=100,
                        rpn_post_nms_top_n_test=30, box_score_thresh=0.0)
    torch.manual_seed(0)
    model = build_detector(spec).eval()
    rng = np.random.default_rng(2)
    large = rng.uniform(0.2, 0.8, (256, 256)).astype(np.float32)  # one 256-px tile
    small = rng.uniform(0.2, 0.8, (100, 100)).astype(np.float32)  # one 128-px tile
    expected = {"large": detect_tiled(model, large, spec), "small": detect_tiled(model, small, spec)}
    assert len(expected["large"].boxes) > 0  # else the test checks nothing
    large_waiting, small_inside, large_resized = threading.Event(), threading.Event(), threading.Event()

    def before(module: torch.nn.Module, args: object) -> None:
        if threading.current_thread().name == "large":
            large_waiting.set()
            small_inside.wait(30)
        else:
            small_inside.set()
            large_resized.wait(30)

    def after(module: torch.nn.Module, args: object, output: object) -> None:
        if threading.current_thread().name == "large":
            large_resized.set()

    hooks = [model.transform.register_forward_pre_hook(before), model.transform.register_forward_hook(after)]
    got: dict[str, object] = {}

    def run(name: str, image: np.ndarray) -> None:
        got[name] = detect_tiled(model, image, spec)

    first = threading.Thread(target=run, args=("large", large), name="large")
    first.start()
    assert large_waiting.wait(30)
    second = threading.Thread(target=run, args=("small", small), name="small")
    second.start()
    first.join(60)
    second.join(60)
    for hook in hooks:
        hook.remove()
    for name, want in expected.items():
        det = got[name]
        assert det.boxes.shape == want.boxes.shape, name  # type: ignore[attr-defined]
        np.testing.assert_allclose(det.boxes, want.boxes, rtol=1e-4, atol=1e-3)  # type: ignore[attr-defined]
    assert model.transform.min_size == (128,) and model.rpn._post_nms_top_n["testing"] == 30


def _state(model: torch.nn.Module) -> dict[str, object]:
    """What a call could change: each tensor's storage and layout, and the model's own attributes."""
    tensors = {name: (t.data_ptr(), t.stride()) for name, t in [*model.named_parameters(), *model.named_buffers()]}
    return {"tensors": tensors, "attributes": sorted(vars(model))}


def test_a_call_changes_nothing_in_the_model_and_calls_agree() -> None:
    """Tiling used to put the backbone in channels-last layout on the first call (new storage for
    every convolution weight, under any call already running) and mark the model with an
    attribute. The layout is now chosen where the model is loaded (``detector.inference_layout``)."""
    model = _model()
    image = np.random.default_rng(3).uniform(0.2, 0.8, (200, 150)).astype(np.float32)
    before = _state(model)
    first = detect_tiled(model, image, SPEC, batch_size=2)
    assert _state(model) == before
    second = detect_tiled(model, image, SPEC, batch_size=2)
    assert len(first.boxes) > 0  # else the test checks nothing
    assert np.array_equal(first.boxes, second.boxes) and np.array_equal(first.scores, second.scores)
    assert np.array_equal(first.probs, second.probs)
    got: list[object] = [None, None]
    barrier = threading.Barrier(2)

    def run(i: int) -> None:
        barrier.wait()
        got[i] = detect_tiled(model, image, SPEC, batch_size=2)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for det in got:
        # Equal up to float reduction order (threads share the intra-op pool).
        np.testing.assert_allclose(det.boxes, first.boxes, rtol=1e-4, atol=1e-3)  # type: ignore[attr-defined]
        np.testing.assert_allclose(det.scores, first.scores, rtol=1e-4, atol=1e-4)  # type: ignore[attr-defined]
    assert _state(model) == before


def test_the_loaded_detector_chooses_its_memory_layout_at_load(tiny_detector) -> None:  # type: ignore[no-untyped-def]
    conv = tiny_detector.model.backbone.body.conv1.weight
    assert conv.is_contiguous(memory_format=torch.channels_last)
    before = _state(tiny_detector.model)
    tiny_detector.predict_standardised(np.random.default_rng(4).uniform(0.2, 0.8, (200, 150)).astype(np.float32))
    assert _state(tiny_detector.model) == before
