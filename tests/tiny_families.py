"""Tiny random-weight checkpoints of the VLM families vgt supports, built in code (no hub access here).

Each builder wires the family's real transformers classes by hand: its `*Config` shrunk to a few thousand
parameters, its real processor and image processor, and a `tokenizers` tokenizer carrying the family's
control tokens (`<|im_start|>`, `<|vision_start|>`, `<|image_pad|>`, `<image>`, `<fake_token_around_image>`,
...) and its released chat template (`released_template`), so `AutoProcessor` / `AutoModelForImageTextToText`
load the saved directory exactly as they load the full-size model. Words are single tokens (vgt-tiny's word list, via
`vgt_agent.backends.tiny_gemma3`), anything else falls back to bytes, so every string round-trips.
"""

from __future__ import annotations

import string
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from vgt_agent.backends.tiny_gemma3 import _SPLIT_PATTERN, DEFAULT_WORDS, SPACE, SYNTAX_TOKENS, save_tiny_gemma3


def released_template(name: str) -> str:
    """A family's chat template exactly as its checkpoints ship it: TRL keeps byte-identical copies (to recognise
    a model and swap in its training template), so the tiny model's template is the released one."""
    return (resources.files("trl") / "chat_templates" / f"{name}.jinja").read_text(encoding="utf-8")


QWEN_SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                 "<|image_pad|>", "<|video_pad|>")
SMOLVLM_SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<end_of_utterance>",
                    "<fake_token_around_image>", "<image>", "<global-img>",
                    *(f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)))


def family_tokenizer(specials: tuple[str, ...], **attributes: str) -> PreTrainedTokenizerFast:
    """A lossless word-level tokenizer (vgt-tiny's vocabulary) with the family's control tokens as special
    added tokens, the grounded-thought syntax as plain added tokens, and no BOS (as Qwen's and SmolVLM's
    templates write their own first token)."""
    vocab: dict[str, int] = {}
    for tok in (*specials, *SYNTAX_TOKENS, *(f"<0x{b:02X}>" for b in range(256)),
                *(string.ascii_letters + string.digits + string.punctuation + "\n\t" + SPACE)):
        vocab.setdefault(tok, len(vocab))
    for word in DEFAULT_WORDS:
        for variant in dict.fromkeys((word, word.lower(), word.capitalize())):
            vocab.setdefault(variant, len(vocab))
            vocab.setdefault(SPACE + variant, len(vocab))
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=None, byte_fallback=True, ignore_merges=True))
    tok.normalizer = normalizers.Replace(" ", SPACE)
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(_SPLIT_PATTERN), behavior="isolated")
    tok.decoder = decoders.Sequence([decoders.Replace(SPACE, " "), decoders.ByteFallback(), decoders.Fuse()])
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in SYNTAX_TOKENS])
    return PreTrainedTokenizerFast(tokenizer_object=tok, padding_side="left", clean_up_tokenization_spaces=False,
                                   model_max_length=8192, **attributes)


def _save(model: torch.nn.Module, processor, directory: Path, eos: list[int], pad: int,
          bos: int | None = None) -> Path:
    gen = model.generation_config
    gen.eos_token_id, gen.pad_token_id, gen.bos_token_id = eos, pad, bos
    model.eval()
    directory = Path(directory)
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


def save_tiny_qwen2_5_vl(directory: str | Path, seed: int = 0) -> Path:
    """Qwen2_5_VLForConditionalGeneration + Qwen2_5_VLProcessor (Qwen2VLImageProcessor: 14 px patches merged
    2x2, at most 112x112 pixels, so a world image is 16 image tokens)."""
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
    )

    tokenizer = family_tokenizer(QWEN_SPECIALS, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    ids = tokenizer.convert_tokens_to_ids
    hidden = 64
    config = Qwen2_5_VLConfig(
        text_config={"vocab_size": len(tokenizer), "hidden_size": hidden, "intermediate_size": 128,
                     "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
                     "max_position_embeddings": 4096, "rope_parameters": {"rope_type": "default", "rope_theta": 1e6,
                                                                          "mrope_section": [2, 3, 3]},
                     "bos_token_id": None, "eos_token_id": ids("<|im_end|>"), "pad_token_id": ids("<|endoftext|>")},
        vision_config={"depth": 1, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "patch_size": 14,
                       "spatial_merge_size": 2, "temporal_patch_size": 2, "window_size": 56,
                       "out_hidden_size": hidden, "fullatt_block_indexes": [0]},
        image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"), vision_end_token_id=ids("<|vision_end|>"),
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2_5_VLForConditionalGeneration(config)
    image_processor = Qwen2VLImageProcessor(min_pixels=56 * 56, max_pixels=112 * 112, patch_size=14, merge_size=2,
                                            temporal_patch_size=2)
    video_processor = Qwen2VLVideoProcessor(patch_size=14, merge_size=2, temporal_patch_size=2)
    processor = Qwen2_5_VLProcessor(image_processor=image_processor, tokenizer=tokenizer,
                                    video_processor=video_processor, chat_template=released_template("qwen2_5_vl"))
    return _save(model, processor, Path(directory), [ids("<|im_end|>"), ids("<|endoftext|>")], ids("<|endoftext|>"))


def save_tiny_qwen3_vl(directory: str | Path, seed: int = 0) -> Path:
    """Qwen3VLForConditionalGeneration + Qwen3VLProcessor (16 px patches merged 2x2, at most 128x128 pixels:
    16 image tokens; one deepstack layer)."""
    from transformers import (
        Qwen2VLImageProcessor,
        Qwen3VLConfig,
        Qwen3VLForConditionalGeneration,
        Qwen3VLProcessor,
    )
    from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor

    tokenizer = family_tokenizer(QWEN_SPECIALS, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    ids = tokenizer.convert_tokens_to_ids
    hidden = 64
    config = Qwen3VLConfig(
        text_config={"vocab_size": len(tokenizer), "hidden_size": hidden, "intermediate_size": 128,
                     "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
                     "max_position_embeddings": 4096,
                     "rope_parameters": {"rope_type": "default", "rope_theta": 5e6, "mrope_section": [2, 3, 3],
                                         "mrope_interleaved": True},
                     "bos_token_id": None, "eos_token_id": ids("<|im_end|>"), "pad_token_id": ids("<|endoftext|>")},
        vision_config={"depth": 1, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "patch_size": 16,
                       "spatial_merge_size": 2, "temporal_patch_size": 2, "out_hidden_size": hidden,
                       "num_position_embeddings": 64, "deepstack_visual_indexes": [0]},
        image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"), vision_end_token_id=ids("<|vision_end|>"),
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen3VLForConditionalGeneration(config)
    image_processor = Qwen2VLImageProcessor(min_pixels=64 * 64, max_pixels=128 * 128, patch_size=16, merge_size=2,
                                            temporal_patch_size=2, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    video_processor = Qwen3VLVideoProcessor(patch_size=16, merge_size=2, temporal_patch_size=2)
    processor = Qwen3VLProcessor(image_processor=image_processor, tokenizer=tokenizer, video_processor=video_processor,
                                 chat_template=released_template("qwen3_vl"))
    return _save(model, processor, Path(directory), [ids("<|im_end|>"), ids("<|endoftext|>")], ids("<|endoftext|>"))


SMOLVLM_IMAGE = (64, 16)  # image side, patch: (64 // 16)^2 / 4 = 4 image tokens after the x2 pixel shuffle


def _smolvlm_config(tokenizer: Any) -> dict[str, Any]:
    """The config arguments Idefics3 (SmolVLM) and SmolVLM2 share: a 2-layer Llama, a 1-layer SigLIP."""
    ids = tokenizer.convert_tokens_to_ids
    image_size, patch = SMOLVLM_IMAGE
    return {
        "text_config": {"model_type": "llama", "vocab_size": len(tokenizer), "hidden_size": 64,
                        "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
                        "num_key_value_heads": 2, "max_position_embeddings": 4096,
                        "bos_token_id": ids("<|im_start|>"), "eos_token_id": ids("<end_of_utterance>"),
                        "pad_token_id": ids("<|im_end|>")},
        "vision_config": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                          "num_attention_heads": 2, "image_size": image_size, "patch_size": patch},
        "image_token_id": ids("<image>"), "scale_factor": 2, "pad_token_id": ids("<|im_end|>"),
    }


def _smolvlm_image_args() -> dict[str, Any]:
    side = SMOLVLM_IMAGE[0]
    return {"size": {"longest_edge": side}, "max_image_size": {"longest_edge": side}, "do_image_splitting": False,
            "image_mean": [0.5] * 3, "image_std": [0.5] * 3}


def save_tiny_smolvlm(directory: str | Path, seed: int = 0) -> Path:
    """Idefics3ForConditionalGeneration + Idefics3Processor, as SmolVLM-Instruct ships it (model_type idefics3):
    a 64 px SigLIP tower, pixel shuffle x2, no image splitting, so an image is <fake_token_around_image>
    <global-img> 4 x <image> <fake_token_around_image>."""
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration, Idefics3ImageProcessor, Idefics3Processor

    tokenizer = family_tokenizer(SMOLVLM_SPECIALS, bos_token="<|im_start|>", eos_token="<end_of_utterance>",
                                 pad_token="<|im_end|>")
    ids = tokenizer.convert_tokens_to_ids
    image_size, patch = SMOLVLM_IMAGE
    config = Idefics3Config(**_smolvlm_config(tokenizer))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Idefics3ForConditionalGeneration(config)
    image_processor = Idefics3ImageProcessor(**_smolvlm_image_args())
    processor = Idefics3Processor(image_processor=image_processor, tokenizer=tokenizer,
                                  image_seq_len=(image_size // patch) ** 2 // 4,
                                  chat_template=released_template("smolvlm"))
    return _save(model, processor, Path(directory), [ids("<end_of_utterance>")], ids("<|im_end|>"),
                 ids("<|im_start|>"))


def save_tiny_smolvlm2(directory: str | Path, seed: int = 0) -> Path:
    """SmolVLMForConditionalGeneration + SmolVLMProcessor, as SmolVLM2 ships it (model_type smolvlm): the same
    wiring as `save_tiny_smolvlm`, plus its video processor and `<video>` token (its processor needs num2words)."""
    from transformers import SmolVLMConfig, SmolVLMForConditionalGeneration, SmolVLMImageProcessor, SmolVLMProcessor
    from transformers.models.smolvlm.video_processing_smolvlm import SmolVLMVideoProcessor

    tokenizer = family_tokenizer((*SMOLVLM_SPECIALS, "<video>"), bos_token="<|im_start|>",
                                 eos_token="<end_of_utterance>", pad_token="<|im_end|>")
    ids = tokenizer.convert_tokens_to_ids
    image_size, patch = SMOLVLM_IMAGE
    config = SmolVLMConfig(**_smolvlm_config(tokenizer))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = SmolVLMForConditionalGeneration(config)
    image_processor = SmolVLMImageProcessor(**_smolvlm_image_args())
    video_processor = SmolVLMVideoProcessor(size={"longest_edge": image_size},
                                            max_image_size={"longest_edge": image_size})
    processor = SmolVLMProcessor(image_processor=image_processor, tokenizer=tokenizer, video_processor=video_processor,
                                 image_seq_len=(image_size // patch) ** 2 // 4,
                                 chat_template=released_template("smolvlm"))
    return _save(model, processor, Path(directory), [ids("<end_of_utterance>")], ids("<|im_end|>"),
                 ids("<|im_start|>"))


FAMILIES = {
    "gemma3": save_tiny_gemma3,  # vgt-tiny's own builder
    "qwen2_5_vl": save_tiny_qwen2_5_vl,
    "qwen3_vl": save_tiny_qwen3_vl,
    "idefics3": save_tiny_smolvlm,
    "smolvlm": save_tiny_smolvlm2,
}
