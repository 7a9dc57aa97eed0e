"""The detector: torchvision Faster R-CNN + FPN sized for calcification clusters in tiles.

Why not torchvision's defaults: ``min_size=800/max_size=1333`` would shrink a whole
mammogram 3–5× and erase calcifications a few pixels wide, and anchors of 32–512 px miss
clusters of 2–10 mm at 0.15 mm/pixel. Here the model sees fixed-size tiles at the working
spacing (``min_size = max_size = tile_size``: torchvision never rescales them) with anchors
from 16 px (2.4 mm) upwards.

Backbones are always built with ``weights=None, weights_backbone=None``: nothing is ever
downloaded; weights come only from our own checkpoints.

Per-class probabilities: torchvision's box head turns each proposal into one box *per
class* and keeps only that class's softmax score. :class:`ProbRoIHeads` instead keeps one
box per proposal (regressed for its most likely foreground class) together with the full
softmax vector, returned as ``"class_probs"`` [K, num_classes] in each detection dict. The
detection score is ``1 − p(background)``; NMS is class-agnostic (a lesion is one box).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import mobilenet_backbone, resnet_fpn_backbone
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.ops import boxes as box_ops
from torchvision.ops.misc import FrozenBatchNorm2d

from mammocad.model.risk import METHODS as RISK_METHODS

CLASSES: tuple[str, ...] = ("background", "benign", "malignant")
BACKBONES = ("resnet18", "resnet50", "mobilenet_v3_large")


@dataclass(frozen=True)
class DetectorSpec:
    """Architecture and decision settings of a checkpoint (JSON via to_dict/from_dict).

    anchor_sizes: one tuple per FPN level (P2..P6 for ResNet); pixels at the working spacing.
    tile_size / tile_overlap: model-frame pixels; the overlap should exceed the largest
        lesion a tile must see whole (64 px = 9.6 mm at 0.15 mm).
    image_mean / image_std: for the single gray channel, replicated to the 3 RGB inputs.
    norm_layer: "batch" (trainable BatchNorm, needed when training from scratch, which is
        our only option without downloads) or "frozen" (FrozenBatchNorm2d, torchvision's
        default for fine-tuning pretrained backbones).
    operating_threshold: breast risk at or above it → breast called malignant.
    risk_method: "max", "two_view" or "noisy_or" (see ``mammocad.model.risk``).
    """

    backbone: str = "resnet18"
    trainable_layers: int = 5
    norm_layer: str = "batch"
    anchor_sizes: tuple[tuple[int, ...], ...] = ((16,), (32,), (64,), (128,), (256,))
    aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    tile_size: int = 512
    tile_overlap: int = 64
    image_mean: float = 0.5
    image_std: float = 0.25
    box_score_thresh: float = 0.05
    box_nms_thresh: float = 0.3
    detections_per_img: int = 100
    rpn_pre_nms_top_n_test: int = 1000
    rpn_post_nms_top_n_test: int = 300
    num_classes: int = 3
    classes: tuple[str, ...] = CLASSES
    operating_threshold: float = 0.5
    risk_method: str = "max"
    #: ResNet stages fed to the FPN (torchvision's ``returned_layers``); dropping 4 removes
    #: layer4 (8.4 M parameters at resnet18), which small CPU-trained checkpoints can spare.
    returned_layers: tuple[int, ...] = (1, 2, 3, 4)
    #: Width of the box head's two fully connected layers (torchvision default 1024; its
    #: first layer alone is 12.8 M parameters at 1024).
    box_head_size: int = 1024
    #: Tile size used at inference (at least tile_size; 0: tile_size). The network is fully convolutional, so
    #: tiles larger than the training tiles give the same features with far less overlap
    #: and per-tile overhead (see ``tiling.py``); evaluation runs the same path.
    inference_tile_size: int = 768
    #: Orientations the image is analysed in and the marks averaged over (1, 2, 4 or 8;
    #: ``orientations.py``). The lesion score threshold is chosen on these fused scores.
    test_time_orientations: int = 1
    #: 0: every orientation analyses the whole image. Otherwise the first orientation analyses
    #: the image and the others only crops of this many pixels (a multiple of 32) around its
    #: marks scoring at least ``orientation_crop_min_score``; marks below it get their score
    #: over the orientation count (``orientations.py``). About half the cost of whole passes.
    orientation_crop_size: int = 0
    orientation_crop_min_score: float = 0.25
    #: At most this many crops per image (the highest-scoring candidates first; a candidate well
    #: inside an earlier crop shares it), which bounds the time an image full of marks takes; a
    #: candidate left without a crop counts as unseen by the other orientations.
    orientation_crop_max_crops: int = 10

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {', '.join(BACKBONES)}, got {self.backbone!r}")
        if self.norm_layer not in ("batch", "frozen"):
            raise ValueError(f"norm_layer must be 'batch' or 'frozen', got {self.norm_layer!r}")
        if not 0 <= self.trainable_layers <= (6 if self.backbone.startswith("mobilenet") else 5):
            raise ValueError(f"trainable_layers out of range for {self.backbone}: {self.trainable_layers}")
        if self.tile_size % 32 or self.tile_size < 64:
            raise ValueError(f"tile_size must be a multiple of 32 and >= 64, got {self.tile_size}")
        if not 0 <= self.tile_overlap < self.tile_size // 2:
            raise ValueError(f"tile_overlap must be in [0, tile_size/2), got {self.tile_overlap}")
        if self.num_classes != len(self.classes):
            raise ValueError(f"num_classes ({self.num_classes}) must equal len(classes) ({len(self.classes)})")
        if not 0.0 <= self.operating_threshold <= 1.0:
            raise ValueError(f"operating_threshold must be in [0, 1], got {self.operating_threshold}")
        if self.test_time_orientations not in (1, 2, 4, 8):
            raise ValueError(f"test_time_orientations must be 1, 2, 4 or 8, got {self.test_time_orientations}")
        if self.orientation_crop_size and (self.orientation_crop_size % 32 or self.orientation_crop_size < 64):
            raise ValueError(f"orientation_crop_size must be 0 or a multiple of 32 >= 64, "
                             f"got {self.orientation_crop_size}")
        if not 0.0 <= self.orientation_crop_min_score <= 1.0:
            raise ValueError(f"orientation_crop_min_score must be in [0, 1], got {self.orientation_crop_min_score}")
        if self.orientation_crop_max_crops < 1:
            raise ValueError(f"orientation_crop_max_crops must be >= 1, got {self.orientation_crop_max_crops}")
        if self.risk_method not in RISK_METHODS:
            raise ValueError(f"risk_method must be one of {', '.join(RISK_METHODS)}, got {self.risk_method!r}")
        levels = len(self.returned_layers) + 1
        if self.backbone.startswith("resnet") and len(self.anchor_sizes) != levels:
            raise ValueError(f"ResNet FPN with returned_layers {list(self.returned_layers)} has {levels} levels: "
                             f"anchor_sizes needs {levels} tuples, got {len(self.anchor_sizes)}")
        if not self.returned_layers or any(v not in (1, 2, 3, 4) for v in self.returned_layers):
            raise ValueError(f"returned_layers must be a non-empty subset of 1-4, got {self.returned_layers}")
        if self.inference_tile_size < 0 or self.inference_tile_size % 32:
            raise ValueError(f"inference_tile_size must be 0 or a multiple of 32, got {self.inference_tile_size}")
        if self.box_head_size < 16:
            raise ValueError(f"box_head_size must be >= 16, got {self.box_head_size}")

    @property
    def min_size(self) -> int:
        return self.tile_size

    @property
    def max_size(self) -> int:
        return self.tile_size

    @property
    def run_tile_size(self) -> int:
        """The tile size inference actually uses: never below the training tile."""
        return max(self.tile_size, self.inference_tile_size)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["anchor_sizes"] = [list(s) for s in self.anchor_sizes]
        d["aspect_ratios"] = list(self.aspect_ratios)
        d["classes"] = list(self.classes)
        d["returned_layers"] = list(self.returned_layers)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DetectorSpec:
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown DetectorSpec fields: {', '.join(unknown)}")
        d = dict(d)
        if "anchor_sizes" in d:
            d["anchor_sizes"] = tuple(tuple(int(v) for v in s) for s in d["anchor_sizes"])
        if "aspect_ratios" in d:
            d["aspect_ratios"] = tuple(float(v) for v in d["aspect_ratios"])
        if "classes" in d:
            d["classes"] = tuple(d["classes"])
        if "returned_layers" in d:
            d["returned_layers"] = tuple(int(v) for v in d["returned_layers"])
        return cls(**d)


class ProbRoIHeads(RoIHeads):
    """RoIHeads whose eval output keeps the softmax vector of each kept box (see module doc).

    Stateless between calls: the eval path is :meth:`forward` → :meth:`detections`, and the
    vectors travel as return values, never through an attribute of the module. So one
    model object may be called twice, or from two threads, and each call gets its own
    probabilities. (The ROI heads have no mask or keypoint branch here, so the eval path
    is torchvision's without those.)
    """

    def detections(self, class_logits: Tensor, box_regression: Tensor, proposals: list[Tensor],
                   image_shapes: list[tuple[int, int]]
                   ) -> tuple[list[Tensor], list[Tensor], list[Tensor], list[Tensor]]:
        """Boxes, scores, labels and softmax vectors kept per image (score filter, NMS, top-k)."""
        # Under autocast the head runs in fp16/bf16; decode and softmax in fp32 so box
        # coordinates keep sub-pixel precision and probabilities sum to 1.
        class_logits, box_regression = class_logits.float(), box_regression.float()
        proposals = [p.float() for p in proposals]
        device = class_logits.device
        per_image = [p.shape[0] for p in proposals]
        pred_boxes = self.box_coder.decode(box_regression, proposals).split(per_image, 0)
        probs_all = F.softmax(class_logits, -1).split(per_image, 0)
        out_boxes, out_scores, out_labels, out_probs = [], [], [], []
        for boxes, probs, shape in zip(pred_boxes, probs_all, image_shapes, strict=True):
            boxes = box_ops.clip_boxes_to_image(boxes, shape)  # [N, C, 4]
            labels = probs[:, 1:].argmax(dim=1) + 1
            idx = torch.arange(boxes.shape[0], device=device)
            boxes = boxes[idx, labels]
            scores = 1.0 - probs[:, 0]
            keep = torch.where(scores > self.score_thresh)[0]
            keep = keep[box_ops.remove_small_boxes(boxes[keep], min_size=1e-2)]
            keep = keep[box_ops.nms(boxes[keep], scores[keep], self.nms_thresh)][: self.detections_per_img]
            out_boxes.append(boxes[keep])
            out_scores.append(scores[keep])
            out_labels.append(labels[keep])
            out_probs.append(probs[keep])
        return out_boxes, out_scores, out_labels, out_probs

    def postprocess_detections(self, class_logits: Tensor, box_regression: Tensor, proposals: list[Tensor],
                               image_shapes: list[tuple[int, int]]) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
        boxes, scores, labels, _ = self.detections(class_logits, box_regression, proposals, image_shapes)
        return boxes, scores, labels

    def forward(self, features: dict[str, Tensor], proposals: list[Tensor], image_shapes: list[tuple[int, int]],
                targets: list[dict[str, Tensor]] | None = None) -> tuple[list[dict[str, Tensor]], dict[str, Tensor]]:
        if self.training:
            return super().forward(features, proposals, image_shapes, targets)
        box_features = self.box_head(self.box_roi_pool(features, proposals, image_shapes))
        class_logits, box_regression = self.box_predictor(box_features)
        boxes, scores, labels, probs = self.detections(class_logits, box_regression, proposals, image_shapes)
        return [{"boxes": b, "labels": lab, "scores": sc, "class_probs": pr}
                for b, sc, lab, pr in zip(boxes, scores, labels, probs, strict=True)], {}


def _backbone(spec: DetectorSpec) -> tuple[nn.Module, tuple[tuple[int, ...], ...]]:
    norm = nn.BatchNorm2d if spec.norm_layer == "batch" else FrozenBatchNorm2d
    if spec.backbone.startswith("resnet"):
        body = resnet_fpn_backbone(backbone_name=spec.backbone, weights=None, norm_layer=norm,
                                   trainable_layers=spec.trainable_layers,
                                   returned_layers=list(spec.returned_layers))
        return body, spec.anchor_sizes
    body = mobilenet_backbone(backbone_name=spec.backbone, weights=None, fpn=True, norm_layer=norm,
                              trainable_layers=spec.trainable_layers)
    # torchvision's MobileNet FPN has 3 levels of the same stride: give each level every size.
    sizes = tuple(s[0] for s in spec.anchor_sizes)
    return body, (sizes,) * 3


#: DetectorSpec fields ``build_detector`` builds into the network (backbone, anchors, the input
#: transform's size and normalisation, the box head and its score/NMS filter). The others are read
#: at analysis time, so a loaded detector can change them (``Detector.with_spec``).
NETWORK_SPEC_FIELDS: frozenset[str] = frozenset({
    "backbone", "trainable_layers", "norm_layer", "anchor_sizes", "aspect_ratios", "tile_size", "image_mean",
    "image_std", "box_score_thresh", "box_nms_thresh", "detections_per_img", "num_classes", "classes",
    "returned_layers", "box_head_size"})


def build_detector(spec: DetectorSpec | None = None) -> FasterRCNN:
    """Build an untrained detector for ``spec`` (random weights; never downloads).

    Input: list of FloatTensor[3, tile, tile] in [0, 1] (gray replicated); training targets
    as torchvision's (boxes FloatTensor[N, 4] x1, y1, x2, y2 in tile pixels; labels 1/2).
    Eval output per tile: boxes, labels, scores and class_probs [K, num_classes].
    """
    spec = spec or DetectorSpec()
    backbone, anchor_sizes = _backbone(spec)
    anchors = AnchorGenerator(sizes=anchor_sizes, aspect_ratios=(spec.aspect_ratios,) * len(anchor_sizes))
    model = FasterRCNN(
        backbone, num_classes=None, min_size=spec.min_size, max_size=spec.max_size,
        image_mean=[spec.image_mean] * 3, image_std=[spec.image_std] * 3,
        rpn_anchor_generator=anchors,
        rpn_pre_nms_top_n_test=spec.rpn_pre_nms_top_n_test, rpn_post_nms_top_n_test=spec.rpn_post_nms_top_n_test,
        box_score_thresh=spec.box_score_thresh, box_nms_thresh=spec.box_nms_thresh,
        box_detections_per_img=spec.detections_per_img,
        # out_channels: the int torchvision's FPN backbones set; nn.Module's typing only knows Tensor | Module.
        box_head=TwoMLPHead(cast(int, backbone.out_channels) * 7 * 7, spec.box_head_size),
        box_predictor=FastRCNNPredictor(spec.box_head_size, spec.num_classes),
    )
    old = model.roi_heads
    model.roi_heads = ProbRoIHeads(
        old.box_roi_pool, old.box_head, old.box_predictor,
        fg_iou_thresh=0.5, bg_iou_thresh=0.5, batch_size_per_image=512, positive_fraction=0.25,
        bbox_reg_weights=None, score_thresh=spec.box_score_thresh, nms_thresh=spec.box_nms_thresh,
        detections_per_img=spec.detections_per_img,
    )
    return model


def inference_layout(model: nn.Module) -> nn.Module:
    """``model`` with its backbone in channels-last memory layout, returned (faster oneDNN/cuDNN
    convolutions on the same weights).

    Called once where a model is loaded for analysis (``Detector.load``), before any call can
    share it. Analysis itself never changes a model (``tiling.tile_mode``): switching the layout
    on a call's first pass replaced the weights' storage under a call already running in another
    thread, and marked the model with an attribute, state switched at run time.
    """
    backbone = getattr(model, "backbone", None)
    if isinstance(backbone, nn.Module):
        backbone.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return model
