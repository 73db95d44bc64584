"""SAM3 as a grounder: a concept phrase in, instance masks out.

A VLM thinking about one image asks for several concepts in a row ("cup", "laptop", "cup left of the
laptop"). The SAM3 vision encoder dominates the cost (benchmarks/sam3_fullsize.py), so the vision features
of an image are computed once and kept in a small LRU cache keyed by the image's content hash.
`ground_many` runs several phrases of one image in one batched forward over those features, and
`ground_batch` encodes several images in one vision-encoder batch, as synthesis needs; both give what
`ground` gives phrase by phrase.

Instance boxes and points come from the masks through `vgt_agent.geometry`, never from SAM3's box head, so
every grounder in the project yields the same geometry for the same mask.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np
import torch
from huggingface_hub.errors import HFValidationError
from PIL import Image
from transformers import Sam3Model, Sam3Processor
from transformers.models.sam3.modeling_sam3 import Sam3ImageSegmentationOutput, Sam3VisionEncoderOutput

from vgt_agent.devices import Placement, resolve_placement
from vgt_agent.geometry import mask_to_box, mask_to_point
from vgt_agent.grounders.base import GroundingResult, Instance

DEFAULT_CHECKPOINT = "facebook/sam3"
V = TypeVar("V")


class Sam3CheckpointError(FileNotFoundError):
    """The SAM3 checkpoint is neither a local directory nor in the Hugging Face cache."""


class FeatureCache(Generic[V]):
    """A bounded least-recently-used map from image hash to per-image model state (not thread-safe)."""

    def __init__(self, maxsize: int) -> None:
        if maxsize < 0:
            raise ValueError(f"cache size must be >= 0, got {maxsize}")
        self.maxsize = maxsize
        self.hits = 0
        self.misses = 0
        self._items: OrderedDict[str, V] = OrderedDict()

    def get(self, key: str) -> V | None:
        if key in self._items:
            self.hits += 1
            self._items.move_to_end(key)
            return self._items[key]
        self.misses += 1
        return None

    def put(self, key: str, value: V) -> None:
        if self.maxsize == 0:
            return
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.maxsize:
            self._items.popitem(last=False)

    def clear(self) -> None:
        self._items.clear()

    def __contains__(self, key: str) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)


def image_key(image: Image.Image) -> str:
    """A content hash: equal pixels share cached features whatever the PIL object's identity."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{image.mode}:{image.width}x{image.height}:".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


def instances_from_masks(masks: np.ndarray, scores: Sequence[float], label: str) -> list[Instance]:
    """Instances best first, box and point derived from each mask.

    A mask that is empty at the image's resolution has no box or point to offer the VLM, so it is dropped.
    """
    instances = []
    for i in sorted(range(len(scores)), key=lambda i: -scores[i]):
        mask = np.ascontiguousarray(masks[i], dtype=bool)
        if mask.any():
            box, point = mask_to_box(mask), mask_to_point(mask)
            instances.append(Instance(mask=mask, box=box, point=point, score=float(scores[i]), label=label))
    return instances


def _rgb(image: Image.Image) -> Image.Image:
    return image if image.mode == "RGB" else image.convert("RGB")


def _as_dtype(dtype: torch.dtype | str) -> torch.dtype:
    resolved = getattr(torch, dtype, None) if isinstance(dtype, str) else dtype
    if not isinstance(resolved, torch.dtype):
        raise ValueError(f"unknown torch dtype {dtype!r}")
    return resolved


def _checkpoint_hint(checkpoint: str) -> str:
    return (
        f"SAM3 checkpoint {checkpoint!r} not found (not a local directory, not in the Hugging Face cache): "
        "on a machine with hub access run `hf download facebook/sam3` (gated: accept the licence on its page "
        "first), then pass the downloaded directory as checkpoint or copy the HF cache (HF_HOME) here"
    )


def load_sam3(
    checkpoint: str | Path = DEFAULT_CHECKPOINT,
    *,
    dtype: torch.dtype | str = torch.float32,
    local_files_only: bool = True,
) -> tuple[Sam3Model, Sam3Processor]:
    """Sam3Model + Sam3Processor from a local directory or a hub id.

    A hub id is looked up in the HF cache only unless `local_files_only=False`: this project's machines
    cannot reach the hub, and an online attempt there spends minutes in retries before failing.
    """
    name = str(checkpoint)
    path = Path(name).expanduser()
    is_dir = path.is_dir()
    if not is_dir and (path.is_absolute() or name.startswith((".", "~")) or name.count("/") > 1):
        raise Sam3CheckpointError(_checkpoint_hint(name))
    source = str(path) if is_dir else name
    offline = True if is_dir else local_files_only
    try:
        processor = Sam3Processor.from_pretrained(source, local_files_only=offline)
        model = Sam3Model.from_pretrained(source, dtype=_as_dtype(dtype), local_files_only=offline)
    except (OSError, HFValidationError) as err:  # "can't load ... from the hub / cache", bad repo id
        raise Sam3CheckpointError(_checkpoint_hint(name)) from err
    return model, processor


class Sam3Grounder:
    """SAM3 (transformers' Sam3Model) behind the `Grounder` protocol, with per-image feature reuse.

    Scores are sigmoid(pred_logits) * sigmoid(presence_logits), as the processor's
    `post_process_instance_segmentation` computes them; an instance is kept when its score is above
    `score_threshold` (so 0 keeps every query and 1 keeps none). `presence` on the result is the image-level
    sigmoid(presence_logits); below `presence_threshold` no instance is returned at all (0 disables this).
    """

    def __init__(
        self,
        checkpoint: str | Path = DEFAULT_CHECKPOINT,
        *,
        model: Sam3Model | None = None,
        processor: Sam3Processor | None = None,
        device: str | torch.device | None = None,
        dtype: torch.dtype | str | None = None,
        score_threshold: float = 0.5,
        mask_threshold: float = 0.5,
        presence_threshold: float = 0.0,
        cache_size: int = 4,
        phrase_batch: int = 8,
        image_batch: int = 4,
        local_files_only: bool = True,
    ) -> None:
        """Load `checkpoint`, or wrap an already built `model` and `processor` (then only named after it).

        `device`/`dtype` None resolve as `--device auto` / `--dtype auto` do (env VGT_DEVICE / VGT_DTYPE);
        the model is moved there in place. Each cached image holds its FPN features and their position
        encodings: about 0.2 GB in float32 for the full model at 1008 px. `phrase_batch` bounds the
        (image, phrase) pairs of one batched forward, `image_batch` the images of one vision-encoder pass.
        """
        if (model is None) != (processor is None):
            raise ValueError("pass both model and processor, or neither")
        if phrase_batch < 1 or image_batch < 1:
            raise ValueError(f"phrase_batch and image_batch must be >= 1, got {phrase_batch} and {image_batch}")
        self.placement: Placement = resolve_placement(
            None if device is None else str(device),
            dtype if dtype is None or isinstance(dtype, str) else str(dtype).removeprefix("torch."),
        )
        self.device, self.dtype = self.placement.torch_device, self.placement.torch_dtype
        if model is None or processor is None:
            model, processor = load_sam3(checkpoint, dtype=self.dtype, local_files_only=local_files_only)
        self.name = f"sam3:{checkpoint}"
        self.phrase_batch = phrase_batch
        self.image_batch = image_batch
        self.model = model.to(device=self.device, dtype=self.dtype).eval()
        self.processor = processor
        self.score_threshold = score_threshold
        self.mask_threshold = mask_threshold
        self.presence_threshold = presence_threshold
        self.cache: FeatureCache[Sam3VisionEncoderOutput] = FeatureCache(cache_size)
        self._text_length = int(self.model.config.text_config.max_position_embeddings)
        self._lock = threading.RLock()  # the cache and the model are shared by concurrent agent graphs

    def encode_image(self, image: Image.Image) -> Sam3VisionEncoderOutput:
        """The image's vision features, from the cache or from one vision-encoder pass (then cached)."""
        return self.encode_images([image])[0]

    def encode_images(self, images: Sequence[Image.Image]) -> list[Sam3VisionEncoderOutput]:
        """Each image's vision features: cached ones reused, the rest encoded `image_batch` at a time.

        Equal images in one call are encoded once. The features are returned even when the cache is
        smaller than the batch (or off), so one call never encodes an image twice.
        """
        rgb = [_rgb(image) for image in images]
        keys = [image_key(image) for image in rgb]
        with self._lock, torch.inference_mode():
            found: dict[str, Sam3VisionEncoderOutput] = {}
            todo: dict[str, Image.Image] = {}
            for key, image in zip(keys, rgb, strict=True):
                if key in found or key in todo:
                    continue
                cached = self.cache.get(key)
                if cached is None:
                    todo[key] = image
                else:
                    found[key] = cached
            pending = list(todo.items())
            for start in range(0, len(pending), self.image_batch):
                chunk = pending[start : start + self.image_batch]
                pixels = self.processor.image_processor(images=[image for _, image in chunk],
                                                        return_tensors="pt")["pixel_values"]
                full = self.model.get_vision_features(pixel_values=pixels.to(self.device, self.dtype))
                for i, (key, _) in enumerate(chunk):
                    # Only the FPN levels feed the heads; the ViT's own last hidden state would double the memory.
                    # Each image's slice is copied out so the cache never pins a whole batch's tensors.
                    features = Sam3VisionEncoderOutput(
                        fpn_hidden_states=tuple(h[i : i + 1].clone() for h in full.fpn_hidden_states),
                        fpn_position_encoding=tuple(p[i : i + 1].clone() for p in full.fpn_position_encoding),
                    )
                    self.cache.put(key, features)
                    found[key] = features
            return [found[key] for key in keys]

    def ground(self, image: Image.Image, concept: str) -> GroundingResult:
        return self.ground_many(image, [concept])[0]

    def ground_many(self, image: Image.Image, concepts: Sequence[str]) -> list[GroundingResult]:
        """Every concept on one image, in order: one vision pass (or the cache), batched text prompts."""
        return self.ground_batch([(image, concepts)])[0]

    def ground_batch(self, jobs: Sequence[tuple[Image.Image, Sequence[str]]]) -> list[list[GroundingResult]]:
        """For each (image, concepts) pair, its concepts' results in order.

        The images are encoded in vision-encoder batches (`encode_images`), then every (image, phrase) pair
        goes through the prompt encoder, DETR and mask decoder `phrase_batch` pairs per forward, each pair
        with its own image's features. Empty phrases get a result with a reason and cost nothing.
        """
        results: list[list[GroundingResult | None]] = [[None] * len(concepts) for _, concepts in jobs]
        pairs: list[tuple[int, int, str]] = []  # (job, concept index, normalised phrase)
        for j, (_, concepts) in enumerate(jobs):
            for c, concept in enumerate(concepts):
                phrase = " ".join(concept.split())
                if phrase:
                    pairs.append((j, c, phrase))
                else:
                    results[j][c] = GroundingResult(concept=concept, reason="empty concept phrase")
        if pairs:
            used = sorted({j for j, _, _ in pairs})
            images = {j: _rgb(jobs[j][0]) for j in used}
            with self._lock, torch.inference_mode():
                features = dict(zip(used, self.encode_images([images[j] for j in used]), strict=True))
                for start in range(0, len(pairs), self.phrase_batch):
                    chunk = pairs[start : start + self.phrase_batch]
                    vision = Sam3VisionEncoderOutput(
                        fpn_hidden_states=_stack([features[j].fpn_hidden_states for j, _, _ in chunk]),
                        fpn_position_encoding=_stack([features[j].fpn_position_encoding for j, _, _ in chunk]),
                    )
                    outputs = self.model(vision_embeds=vision, **self._tokenize([p for _, _, p in chunk]))
                    for row, (j, c, phrase) in enumerate(chunk):
                        size = (images[j].height, images[j].width)
                        results[j][c] = self._result(jobs[j][1][c], phrase, _row(outputs, row), size)
        return [[r for r in rs if r is not None] for rs in results]

    def _tokenize(self, phrases: list[str]) -> dict[str, torch.Tensor]:
        """Ids padded to SAM3's 32-token text context; longer phrases are truncated (the processor won't)."""
        text = self.processor.tokenizer(
            phrases, padding="max_length", max_length=self._text_length, truncation=True, return_tensors="pt"
        )
        return {
            "input_ids": text["input_ids"].to(self.device),
            "attention_mask": text["attention_mask"].to(self.device),
        }

    def _result(
        self, concept: str, phrase: str, outputs: Sam3ImageSegmentationOutput, size: tuple[int, int]
    ) -> GroundingResult:
        presence = float(outputs.presence_logits.float().sigmoid().reshape(-1)[0])
        if presence < self.presence_threshold:
            return GroundingResult(concept=concept, presence=presence)
        as_float = Sam3ImageSegmentationOutput(  # post-processing upsamples masks: do it in float32
            pred_masks=outputs.pred_masks.float(),
            pred_boxes=outputs.pred_boxes.float(),
            pred_logits=outputs.pred_logits.float(),
            presence_logits=outputs.presence_logits.float(),
        )
        found = self.processor.post_process_instance_segmentation(
            as_float, threshold=self.score_threshold, mask_threshold=self.mask_threshold, target_sizes=[size]
        )[0]
        masks = found["masks"].bool().cpu().numpy()
        scores = found["scores"].cpu().tolist()
        instances = instances_from_masks(masks, scores, phrase)
        return GroundingResult(concept=concept, instances=instances, presence=presence)


def _stack(levels: Sequence[tuple[torch.Tensor, ...]]) -> tuple[torch.Tensor, ...]:
    """Per-pair FPN levels (each [1, C, H, W]) as one batch, level by level.

    Consecutive pairs of the same image share its tensors through `expand` (no copy), so many phrases on
    one image cost no feature memory beyond the image's own.
    """
    runs: list[tuple[tuple[torch.Tensor, ...], int]] = []
    for item in levels:
        if runs and runs[-1][0] is item:
            runs[-1] = (item, runs[-1][1] + 1)
        else:
            runs.append((item, 1))
    per_level = zip(*(tuple(t.expand(n, *t.shape[1:]) for t in item) for item, n in runs), strict=True)
    return tuple(parts[0] if len(parts) == 1 else torch.cat(parts, dim=0) for parts in per_level)


def _row(outputs: Sam3ImageSegmentationOutput, row: int) -> Sam3ImageSegmentationOutput:
    """One pair's outputs out of a batched forward, as a batch of one."""
    return Sam3ImageSegmentationOutput(
        pred_masks=outputs.pred_masks[row : row + 1],
        pred_boxes=outputs.pred_boxes[row : row + 1],
        pred_logits=outputs.pred_logits[row : row + 1],
        presence_logits=outputs.presence_logits[row : row + 1],
    )


class Sam3PackageGrounder:
    """SAM3 through Meta's `sam3` package (`pip install 'vgt[sam3]'`), behind the same interface.

    Untested here, on purpose: sam3 0.1.4 as shipped needs CUDA (hard-coded device strings, `pin_memory`,
    a triton import) and this project's machines have no GPU. It is a thin adapter over the package's own
    `Sam3Processor.set_image` / `set_text_prompt` flow, caching the `set_image` state per image as
    `Sam3Grounder` caches vision features. That flow folds presence into the scores without exposing it,
    so `presence` is None, and masks are binarised at the package's fixed 0.5.
    """

    def __init__(
        self,
        checkpoint_path: str | Path,
        *,
        device: str = "cuda",
        score_threshold: float = 0.5,
        cache_size: int = 2,
        bpe_path: str | Path | None = None,
    ) -> None:
        try:
            from sam3.model.sam3_image_processor import Sam3Processor as PackageProcessor
            from sam3.model_builder import build_sam3_image_model
        except ImportError as err:
            raise ImportError(
                "Sam3PackageGrounder needs the `sam3` package: pip install 'vgt[sam3]' (GPU machines only)"
            ) from err
        if not str(device).startswith("cuda") or not torch.cuda.is_available():
            raise RuntimeError(
                f"the sam3 package (0.1.4) needs CUDA as shipped, got device {device!r} "
                f"(cuda available: {torch.cuda.is_available()}); on CPU use Sam3Grounder"
            )
        path = Path(checkpoint_path).expanduser()
        if not path.is_file():
            raise Sam3CheckpointError(
                f"sam3 checkpoint file {str(path)!r} not found: on a machine with hub access run "
                "`hf download facebook/sam3 sam3.pt` (gated: accept the licence first) and pass that file"
            )
        from vgt_agent.grounders.clip_tokenizer import find_bpe_file  # the sam3 wheel ships no BPE asset

        bpe = str(bpe_path or find_bpe_file())
        model = build_sam3_image_model(
            bpe_path=bpe, device=device, checkpoint_path=str(path), load_from_HF=False
        )
        self.name = f"sam3-package:{path}"
        self.processor = PackageProcessor(model, device=device, confidence_threshold=score_threshold)
        self.cache: FeatureCache[dict[str, Any]] = FeatureCache(cache_size)
        self._lock = threading.RLock()

    def ground(self, image: Image.Image, concept: str) -> GroundingResult:
        phrase = " ".join(concept.split())
        if not phrase:
            return GroundingResult(concept=concept, reason="empty concept phrase")
        image = _rgb(image)
        key = image_key(image)
        with self._lock:
            state = self.cache.get(key)
            if state is None:
                state = self.processor.set_image(image)
                self.cache.put(key, state)
            state = self.processor.set_text_prompt(prompt=phrase, state=state)
            masks = state["masks"][:, 0].cpu().numpy()
            scores = state["scores"].float().cpu().tolist()
            self.processor.reset_all_prompts(state)  # keep only the image features in the cache
        return GroundingResult(concept=concept, instances=instances_from_masks(masks, scores, phrase))
