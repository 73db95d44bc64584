"""The tiny Gemma3 is a real Gemma3: same classes, ids, template shape; lossless tokenizer; offline reload."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from transformers import (
    AutoModelForImageTextToText,
    AutoProcessor,
    Gemma3ForConditionalGeneration,
    Gemma3Processor,
)

from vgt_agent.backends.tiny_gemma3 import SYNTAX_TOKENS, build_tiny_gemma3, build_tiny_tokenizer


@pytest.fixture(scope="module")
def tiny():
    return build_tiny_gemma3()


def _image(colour: tuple[int, int, int] = (220, 40, 40)) -> Image.Image:
    img = Image.new("RGB", (96, 80), (245, 245, 245))
    img.paste(colour, (20, 20, 50, 50))
    return img


def _chat() -> list[dict]:
    return [
        {"role": "system", "content": "Answer in \\boxed{}."},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "How many red circles?"}]},
    ]


def _inputs(processor, images: list[Image.Image], messages: list[dict] | None = None):
    return processor.apply_chat_template(
        messages or _chat(),
        add_generation_prompt=True,
        tokenize=True,
        return_dict=True,
        return_tensors="pt",
        processor_kwargs={"images": images},
    )


def test_real_gemma3_classes_with_matching_ids(tiny):
    model, processor = tiny
    tok = processor.tokenizer
    assert isinstance(model, Gemma3ForConditionalGeneration) and isinstance(processor, Gemma3Processor)
    cfg = model.config
    assert cfg.image_token_id == tok.convert_tokens_to_ids("<image_soft_token>") == tok.image_token_id
    assert cfg.boi_token_id == tok.convert_tokens_to_ids("<start_of_image>") == processor.image_token_id
    assert cfg.eoi_token_id == tok.convert_tokens_to_ids("<end_of_image>")
    assert cfg.text_config.pad_token_id == tok.pad_token_id == 0
    assert cfg.text_config.eos_token_id == tok.eos_token_id == 1
    assert cfg.text_config.vocab_size == len(tok)
    assert model.generation_config.eos_token_id == [
        tok.eos_token_id,
        tok.convert_tokens_to_ids("<end_of_turn>"),
    ]
    assert processor.image_seq_length == cfg.mm_tokens_per_image == 16


def test_chat_template_renders_gemma3_turns_with_image(tiny):
    _, processor = tiny
    text = processor.apply_chat_template(_chat(), add_generation_prompt=True)
    assert text == (
        "<bos><start_of_turn>user\nAnswer in \\boxed{}.\n\n<start_of_image>How many red circles?"
        "<end_of_turn>\n<start_of_turn>model\n"
    )
    ids = _inputs(processor, [_image()])["input_ids"][0].tolist()
    tok = processor.tokenizer
    boi = ids.index(tok.convert_tokens_to_ids("<start_of_image>"))
    assert ids[boi + 1 : boi + 17] == [tok.image_token_id] * 16
    assert ids[boi + 17] == tok.convert_tokens_to_ids("<end_of_image>")


def test_assistant_turn_is_marked_for_assistant_only_loss(tiny):
    _, processor = tiny
    chat = [*_chat(), {"role": "assistant", "content": "<think> one </think> \\boxed{1}"}]
    out = processor.apply_chat_template(
        chat,
        tokenize=True,
        return_dict=True,
        return_tensors="pt",
        return_assistant_tokens_mask=True,
        processor_kwargs={"images": [_image()]},
    )
    masked = out["input_ids"][0][out["assistant_masks"][0].bool()]
    assert processor.tokenizer.decode(masked) == "<think> one </think> \\boxed{1}<end_of_turn>\n"


@pytest.mark.parametrize(
    "text",
    [
        "<obj> red circle | [412, 233] </obj>",
        "<obj> blue squares | [10, 20, 300, 400]; [0, 0, 1000, 1000] </obj>",
        "<think> I count  two\tstars.\n\n<ground> small star </ground>\n</think> \\boxed{2}",
        " leading and trailing spaces ",
        "Unknown Zyxwords, ünïcödé and emoji 🙂 survive via bytes.",
    ],
)
def test_tokenizer_round_trips_losslessly(tiny, text):
    tok = tiny[1].tokenizer
    assert tok.decode(tok.encode(text, add_special_tokens=False)) == text
    assert tok.decode(tok.encode(text), skip_special_tokens=True) == text


def test_syntax_pieces_are_single_non_special_tokens(tiny):
    tok = tiny[1].tokenizer
    for piece in SYNTAX_TOKENS:
        ids = tok.encode(piece, add_special_tokens=False)
        assert len(ids) == 1 and tok.decode(ids, skip_special_tokens=True) == piece
    ids = tok.encode("<obj> red circle | [412, 233] </obj>", add_special_tokens=False)
    pieces = tok.convert_ids_to_tokens(ids)
    assert pieces[:3] == ["<obj>", "▁red", "▁circle"] and "4" in pieces and "412" not in pieces


def test_custom_vocabulary_words_are_single_tokens():
    tok = build_tiny_tokenizer(["zebra", "giraffe"])
    assert tok.convert_ids_to_tokens(tok.encode("a zebra", add_special_tokens=False)) == ["a", "▁zebra"]
    assert tok.decode(tok.encode("Giraffe red", add_special_tokens=False)) == "Giraffe red"


def test_forward_sees_the_image(tiny):
    model, processor = tiny
    with torch.no_grad():
        red = model(**_inputs(processor, [_image((220, 40, 40))])).logits
        blue = model(**_inputs(processor, [_image((40, 80, 220))])).logits
    assert red.shape[-1] == len(processor.tokenizer)
    assert not torch.allclose(red[0, -1], blue[0, -1])  # the projector is not Gemma3's all-zero init


def test_generate_a_few_tokens(tiny):
    model, processor = tiny
    inputs = _inputs(processor, [_image()])
    out = model.generate(**inputs, min_new_tokens=5, max_new_tokens=5, do_sample=False)
    assert out.shape[1] == inputs["input_ids"].shape[1] + 5
    assert torch.equal(out, model.generate(**inputs, min_new_tokens=5, max_new_tokens=5, do_sample=False))


def test_same_seed_same_weights_other_seed_differs():
    a, _ = build_tiny_gemma3(seed=3)
    b, _ = build_tiny_gemma3(seed=3)
    c, _ = build_tiny_gemma3(seed=4)
    wa, wb, wc = (m.get_input_embeddings().weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)


def test_rejects_image_geometry_that_cannot_pool():
    with pytest.raises(ValueError, match="mm_tokens_per_image"):
        build_tiny_gemma3(image_size=64, patch_size=16, mm_tokens_per_image=9)


def test_save_and_reload_offline_gives_identical_logits(tiny, tmp_path, monkeypatch):
    model, processor = tiny
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    processor2 = AutoProcessor.from_pretrained(tmp_path)
    model2 = AutoModelForImageTextToText.from_pretrained(tmp_path).eval()
    assert isinstance(model2, Gemma3ForConditionalGeneration) and isinstance(processor2, Gemma3Processor)
    a, b = _inputs(processor, [_image()]), _inputs(processor2, [_image()])
    assert all(torch.equal(a[k], b[k]) for k in a)
    with torch.no_grad():
        assert torch.equal(model(**a).logits, model2(**b).logits)
    text = "<obj> red circle | [412, 233] </obj>"
    assert processor2.tokenizer.decode(processor2.tokenizer.encode(text), skip_special_tokens=True) == text
    out = model2.generate(**b, max_new_tokens=3, do_sample=False)
    assert out.shape[1] > b["input_ids"].shape[1]
