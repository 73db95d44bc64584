"""The real CLIP BPE tokenizer, built offline.

SAM3's text encoder is CLIP's, so its prompts must be tokenized with CLIP's exact vocabulary. The hub copy
of that tokenizer is out of reach on offline machines, but the BPE merges file that defines it ships inside
the `open_clip_torch` wheel (`open_clip/bpe_simple_vocab_16e6.txt.gz`). The vocabulary is a pure function
of that file, rebuilt here the way OpenAI's `SimpleTokenizer` does it.
"""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

from transformers import CLIPTokenizer

BPE_FILENAME = "bpe_simple_vocab_16e6.txt.gz"
# CLIP keeps the first 49152 - 256 - 2 merges: with 512 byte tokens and 2 specials the vocab is 49408.
NUM_MERGES = 49152 - 256 - 2
VOCAB_SIZE = 49408
BOS, EOS = "<|startoftext|>", "<|endoftext|>"
INSTALL_HINT = "pip install --no-deps open_clip_torch==3.3.0"


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable-character map: the 256 base tokens of byte-level BPE."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, chars), strict=True))


def find_bpe_file() -> Path:
    """The merges file inside an installed open_clip, found without importing it (it needs ftfy, timm)."""
    spec = importlib.util.find_spec("open_clip")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        path = Path(location) / BPE_FILENAME
        if path.is_file():
            return path
    where = f"no {BPE_FILENAME} in open_clip at {locations[0]}" if locations else "open_clip is not installed"
    raise FileNotFoundError(
        f"CLIP BPE merges file not found ({where}): `{INSTALL_HINT}` or pass bpe_path=.../{BPE_FILENAME}"
    )


def read_merges(bpe_path: Path) -> list[tuple[str, str]]:
    """The merge rules CLIP uses, in priority order (the first line of the file is a version header)."""
    with gzip.open(bpe_path, "rt", encoding="utf-8") as f:
        lines = f.read().split("\n")[1 : NUM_MERGES + 1]
    merges = [tuple(line.split()) for line in lines]
    if len(merges) != NUM_MERGES or any(len(m) != 2 for m in merges):
        raise ValueError(f"{bpe_path} is not a CLIP BPE merges file ({len(merges)} usable merge lines)")
    return merges  # type: ignore[return-value]


def clip_vocab(merges: list[tuple[str, str]]) -> dict[str, int]:
    """Byte tokens, their end-of-word variants, one token per merge, then the two specials."""
    base = list(bytes_to_unicode().values())
    tokens = base + [b + "</w>" for b in base] + ["".join(m) for m in merges] + [BOS, EOS]
    return {token: i for i, token in enumerate(tokens)}


def build_clip_tokenizer(bpe_path: str | Path | None = None, *, model_max_length: int = 77) -> CLIPTokenizer:
    """CLIP's tokenizer (49408 tokens, `<|startoftext|>` 49406, `<|endoftext|>` 49407 also padding).

    `bpe_path` defaults to the file shipped in an installed `open_clip_torch`.
    """
    path = Path(bpe_path).expanduser() if bpe_path is not None else find_bpe_file()
    if not path.is_file():
        raise FileNotFoundError(f"CLIP BPE merges file {path} does not exist")
    merges = read_merges(path)
    vocab = clip_vocab(merges)
    if len(vocab) != VOCAB_SIZE:
        raise ValueError(f"{path} gives {len(vocab)} distinct tokens, CLIP has {VOCAB_SIZE}")
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=model_max_length)
