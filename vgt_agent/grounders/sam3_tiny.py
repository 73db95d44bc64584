"""A tiny, randomly initialised SAM3 with the real CLIP tokenizer, for tests and offline plumbing.

No pretrained SAM3 weights can be fetched here, so everything that does not depend on what the weights
*know* (shapes, post-processing, feature reuse, save/reload) is exercised on this model. The sizes follow
transformers' own SAM3 test suite (hidden 32, 224 px, 5 queries); the text vocabulary is CLIP's full
49408 tokens so the real tokenizer's ids are valid inputs.
"""

from __future__ import annotations

import torch
from transformers import Sam3Config, Sam3ImageProcessor, Sam3Model, Sam3Processor
from transformers.models.sam3.configuration_sam3 import (
    Sam3DETRDecoderConfig,
    Sam3DETREncoderConfig,
    Sam3GeometryEncoderConfig,
    Sam3MaskDecoderConfig,
    Sam3VisionConfig,
    Sam3ViTConfig,
)

from vgt_agent.grounders.clip_tokenizer import VOCAB_SIZE, build_clip_tokenizer

HIDDEN = 32
HEADS = 4
FFN = 64
PATCH = 14
TEXT_LENGTH = 32  # SAM3's text context: Sam3Processor pads prompts to 32 tokens


def tiny_sam3_config(image_size: int = 224, num_queries: int = 5) -> Sam3Config:
    """Every sub-model at width 32 with one or two layers; `image_size` must be a multiple of 14."""
    if image_size % PATCH:
        raise ValueError(f"image_size must be a multiple of the {PATCH} px patch, got {image_size}")
    grid = image_size // PATCH
    scale_factors = [2.0, 1.0]  # two FPN levels; the model drops the last one
    backbone = Sam3ViTConfig(
        hidden_size=HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=HEADS,
        intermediate_size=FFN,
        image_size=image_size,
        patch_size=PATCH,
        window_size=max(1, grid // 2),
        global_attn_indexes=[0, 1],
    )
    vision = Sam3VisionConfig(
        backbone_config=backbone,
        fpn_hidden_size=HIDDEN,
        scale_factors=scale_factors,
        backbone_feature_sizes=[[int(grid * s)] * 2 for s in scale_factors],
    )
    text = {
        "vocab_size": VOCAB_SIZE,
        "hidden_size": HIDDEN,
        "intermediate_size": FFN,
        "projection_dim": HIDDEN,
        "num_hidden_layers": 2,
        "num_attention_heads": HEADS,
        "max_position_embeddings": TEXT_LENGTH,
        "hidden_act": "gelu",
    }
    layer = {"hidden_size": HIDDEN, "num_attention_heads": HEADS, "intermediate_size": FFN}
    return Sam3Config(
        vision_config=vision,
        text_config=text,
        geometry_encoder_config=Sam3GeometryEncoderConfig(num_layers=1, **layer),
        detr_encoder_config=Sam3DETREncoderConfig(num_layers=1, **layer),
        detr_decoder_config=Sam3DETRDecoderConfig(num_layers=1, num_queries=num_queries, **layer),
        mask_decoder_config=Sam3MaskDecoderConfig(hidden_size=HIDDEN, num_upsampling_stages=2),
    )


def tiny_sam3_processor(image_size: int = 224) -> Sam3Processor:
    """SAM3's processor at `image_size`, with the real SAM3 normalisation (mean = std = 0.5)."""
    image_processor = Sam3ImageProcessor(
        size={"height": image_size, "width": image_size}, image_mean=[0.5] * 3, image_std=[0.5] * 3
    )
    return Sam3Processor(image_processor=image_processor, tokenizer=build_clip_tokenizer())


def build_tiny_sam3(
    seed: int = 0, *, image_size: int = 224, num_queries: int = 5
) -> tuple[Sam3Model, Sam3Processor]:
    """A seeded random tiny Sam3Model (~1.8 M parameters, most in CLIP's token embedding) and its processor.

    The global torch RNG is left untouched, so building one does not perturb a caller's random stream.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Sam3Model(tiny_sam3_config(image_size, num_queries))
    return model.eval(), tiny_sam3_processor(image_size)
