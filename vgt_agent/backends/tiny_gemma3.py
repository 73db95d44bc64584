"""A tiny, randomly initialised Gemma3 VLM built entirely in code.

Why: no hub access and no GPU here, yet training, the transformers backend and the agent need a *real*
`Gemma3ForConditionalGeneration` + `Gemma3Processor` pair (same classes, chat template shape, image token
expansion and special-token ids as Gemma3-4B-IT) that runs in milliseconds on a CPU.

The tokenizer is a `tokenizers` BPE with no merges and `ignore_merges=True`: a whole word found in the
vocabulary is one token, anything else falls back to characters and then to bytes, so every string
round-trips losslessly (`decode(encode(s)) == s`). Spaces are normalised to "▁" and glued to the following
word like SentencePiece does for Gemma; digits are single tokens like Gemma's.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from pathlib import Path

import torch
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from transformers import (
    Gemma3Config,
    Gemma3ForConditionalGeneration,
    Gemma3ImageProcessor,
    Gemma3Processor,
    Gemma3TextConfig,
    PreTrainedTokenizerFast,
    SiglipVisionConfig,
)

# Gemma3's control tokens, in the order their ids are assigned (pad=0, eos=1, bos=2, unk=3 as in Gemma).
PAD, EOS, BOS, UNK = "<pad>", "<eos>", "<bos>", "<unk>"
START_OF_TURN, END_OF_TURN = "<start_of_turn>", "<end_of_turn>"
BOI, EOI, IMAGE_TOKEN = "<start_of_image>", "<end_of_image>", "<image_soft_token>"
SPECIAL_TOKENS = (PAD, EOS, BOS, UNK, START_OF_TURN, END_OF_TURN, BOI, EOI, IMAGE_TOKEN)

# Grounded-thought syntax kept as single, *non-special* tokens: they must survive skip_special_tokens.
SYNTAX_TOKENS = ("<think>", "</think>", "<ground>", "</ground>", "<obj>", "</obj>", "\\boxed{")

SPACE = "▁"  # what a space becomes before splitting, as in Gemma's SentencePiece vocabulary

# One pre-token per word (with its leading "▁"), per digit, per lone space, per other character. An answer
# word (yes, no, an option letter) never takes the "▁": written in a thought and inside \boxed{} it is the
# same token, so the policy answers by copying it, as it does digits.
ANSWER_WORDS = ("yes", "no", *"ABCDEFGH")
_SPLIT_PATTERN = rf"▁(?=(?:{'|'.join(ANSWER_WORDS)})\b)|▁?[A-Za-z]+|[0-9]|▁|\s|[^A-Za-z0-9▁\s]"

_COLOURS = "red green blue yellow orange purple pink brown black white gray grey cyan magenta colour colours"
_SHAPES = (
    "circle square triangle rectangle star ellipse diamond hexagon pentagon cross heart ring oval disk dot "
    "shape object thing item"
)
_SIZES = "small large big tiny medium huge size larger smaller bigger largest smallest biggest"
_NUMBERS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty none single pair several many few"
)
_SPATIAL = (
    "left right above below top bottom near far next to behind front between inside outside center centre "
    "middle closest farthest nearest furthest under over beside across corner side upper lower edge "
    "leftmost rightmost topmost bottommost row column position located location"
)
_FUNCTION = (
    "the a an and or not no yes of on in at by for from with is are was were be it its this that these those "
    "there here which what where how who each every all both any some other another same different more less "
    "fewer than most least only also as so then therefore because if but do does did has have had can see "
    "seen look find found let me i we you my our image picture scene question answer final count counted "
    "counting number total sum plus minus equals step first second third last think check compare another "
    "visible appear appears so grounded ground point box mask instance instances true false color colors"
)
_PLURALS = " ".join(w + ("es" if w.endswith(("s", "x")) else "s") for w in _SHAPES.split())

DEFAULT_WORDS: tuple[str, ...] = tuple(
    dict.fromkeys(" ".join([_COLOURS, _SHAPES, _SIZES, _NUMBERS, _SPATIAL, _FUNCTION, _PLURALS]).split())
)

# Gemma3-4B-IT's chat template, plus `{% generation %}` around assistant content for TRL's
# assistant_only_loss. System prompts fold into the first user turn; roles must alternate.
GEMMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- if messages[0]['content'] is string -%}"
    "{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}"
    "{%- else -%}"
    "{%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}"
    "{%- endif -%}"
    "{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}"
    "{%- set first_user_prefix = '' -%}"
    "{%- set loop_messages = messages -%}"
    "{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{%- endif -%}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}"
    "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') }}"
    "{%- if role == 'model' -%}{%- generation -%}"
    "{%- if message['content'] is string -%}{{ message['content'] | trim }}"
    "{%- else -%}{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'text' -%}{{ item['text'] | trim }}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{ '<end_of_turn>\n' }}"
    "{%- endgeneration -%}"
    "{%- else -%}"
    "{%- if message['content'] is string -%}{{ message['content'] | trim }}"
    "{%- elif message['content'] is iterable -%}{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'image' -%}{{ '<start_of_image>' }}"
    "{%- elif item['type'] == 'text' -%}{{ item['text'] | trim }}{%- endif -%}"
    "{%- endfor -%}"
    "{%- else -%}{{ raise_exception('Invalid content type') }}{%- endif -%}"
    "{{ '<end_of_turn>\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)


def _base_vocab(words: Sequence[str]) -> dict[str, int]:
    """Special tokens, then 256 byte-fallback tokens, then characters, then words with and without '▁'."""
    vocab: dict[str, int] = {}

    def add(tok: str) -> None:
        vocab.setdefault(tok, len(vocab))

    for tok in SPECIAL_TOKENS + SYNTAX_TOKENS:
        add(tok)
    for b in range(256):
        add(f"<0x{b:02X}>")
    for ch in string.ascii_letters + string.digits + string.punctuation + "\n\t" + SPACE:
        add(ch)
    for word in words:
        for variant in dict.fromkeys((word, word.lower(), word.capitalize())):
            if variant.isascii() and variant.isalpha():
                add(variant)
                add(SPACE + variant)
    return vocab


def build_tiny_tokenizer(vocab_words: Sequence[str] | None = None) -> PreTrainedTokenizerFast:
    """A lossless word-level-with-fallback tokenizer carrying Gemma3's special tokens and attributes."""
    vocab = _base_vocab(DEFAULT_WORDS if vocab_words is None else vocab_words)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=UNK, byte_fallback=True, ignore_merges=True))
    tok.normalizer = normalizers.Replace(" ", SPACE)
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(_SPLIT_PATTERN), behavior="isolated")
    tok.decoder = decoders.Sequence([decoders.Replace(SPACE, " "), decoders.ByteFallback(), decoders.Fuse()])
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, vocab[BOS])]
    )
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in SYNTAX_TOKENS])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        extra_special_tokens={
            "start_of_turn_token": START_OF_TURN,
            "end_of_turn_token": END_OF_TURN,
            "boi_token": BOI,
            "eoi_token": EOI,
            "image_token": IMAGE_TOKEN,
        },
        padding_side="left",
        clean_up_tokenization_spaces=False,
        model_max_length=8192,
    )


def _layer_types(layers: int) -> list[str]:
    """Gemma3's 5-local:1-global pattern, with the last layer always global so short stacks see everything."""
    return [
        "full_attention" if (i + 1) % 6 == 0 or i == layers - 1 else "sliding_attention"
        for i in range(layers)
    ]


def build_tiny_gemma3(
    vocab_words: Sequence[str] | None = None,
    *,
    image_size: int = 64,
    patch_size: int = 16,
    mm_tokens_per_image: int = 16,
    hidden: int = 64,
    layers: int = 2,
    heads: int = 2,
    kv_heads: int = 1,
    head_dim: int = 32,
    intermediate: int = 128,
    vision_hidden: int = 32,
    vision_layers: int = 1,
    vision_heads: int = 2,
    vision_intermediate: int = 64,
    max_positions: int = 4096,
    sliding_window: int = 512,
    seed: int = 0,
) -> tuple[Gemma3ForConditionalGeneration, Gemma3Processor]:
    """Build a random tiny Gemma3 VLM and its processor; same seed, same weights."""
    patches_per_side = image_size // patch_size
    tokens_per_side = round(mm_tokens_per_image**0.5)
    if (
        image_size % patch_size
        or tokens_per_side**2 != mm_tokens_per_image
        or patches_per_side % tokens_per_side
    ):
        raise ValueError(
            f"image_size={image_size}/patch_size={patch_size} gives {patches_per_side}^2 patches, which "
            f"cannot be average-pooled to mm_tokens_per_image={mm_tokens_per_image} (needs a square divisor)"
        )
    tokenizer = build_tiny_tokenizer(vocab_words)
    ids = tokenizer.convert_tokens_to_ids
    text_config = Gemma3TextConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        head_dim=head_dim,
        query_pre_attn_scalar=head_dim,
        max_position_embeddings=max_positions,
        sliding_window=sliding_window,
        layer_types=_layer_types(layers),
        pad_token_id=ids(PAD),
        eos_token_id=ids(EOS),
        bos_token_id=ids(BOS),
    )
    vision_config = SiglipVisionConfig(
        hidden_size=vision_hidden,
        intermediate_size=vision_intermediate,
        num_hidden_layers=vision_layers,
        num_attention_heads=vision_heads,
        image_size=image_size,
        patch_size=patch_size,
        vision_use_head=False,
    )
    config = Gemma3Config(
        text_config=text_config,
        vision_config=vision_config,
        mm_tokens_per_image=mm_tokens_per_image,
        boi_token_index=ids(BOI),
        eoi_token_index=ids(EOI),
        image_token_index=ids(IMAGE_TOKEN),
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Gemma3ForConditionalGeneration(config)
        # Gemma3 zero-initialises the vision projection (pretrained weights overwrite it); random tiny models
        # would then be blind, so give it the same small normal init as every other linear layer.
        torch.nn.init.normal_(model.model.multi_modal_projector.mm_input_projection_weight, std=0.02)
    model.eval()
    gen = model.generation_config
    gen.bos_token_id, gen.pad_token_id = ids(BOS), ids(PAD)
    gen.eos_token_id = [ids(EOS), ids(END_OF_TURN)]  # as Gemma3-IT: a model turn ends with <end_of_turn>

    image_processor = Gemma3ImageProcessor(
        size={"height": image_size, "width": image_size},
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
        do_pan_and_scan=False,
    )
    processor = Gemma3Processor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        chat_template=GEMMA3_CHAT_TEMPLATE,
        image_seq_length=mm_tokens_per_image,
    )
    return model, processor


def save_tiny_gemma3(directory: str | Path, vocab_words: Sequence[str] | None = None, **kwargs) -> Path:
    """Build and save a tiny Gemma3 so it loads with AutoProcessor / AutoModelForImageTextToText."""
    model, processor = build_tiny_gemma3(vocab_words, **kwargs)
    path = Path(directory)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path
