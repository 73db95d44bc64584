"""The annotated picture of a stored trace, shared by `vgt traces show --png` and `vgt ask --save`."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from vgt_agent.cli.common import usage_error
from vgt_agent.draw import Mark, annotate
from vgt_agent.geometry import decode_rle, pixel_from_norm_box, pixel_from_norm_point


def write_trace_png(row: dict, out: Path) -> None:
    """Draw the trace's groundings (and the masks behind them) on its image."""
    try:
        with Image.open(row["image_path"]) as im:
            image = im.convert("RGB")
    except OSError as e:
        usage_error(f"cannot read the trace's image {row['image_path']}: {e}")
    w, h = image.size
    marks = []
    for g in row["groundings"]:
        coords = g["coords"]
        masks = [decode_rle(m["rle"]) for m in row["masks"] if m["grounding_idx"] == g["idx"]]
        if g["kind"] == "point":
            marks.append(Mark(g["phrase"], points=[pixel_from_norm_point(x, y, w, h) for x, y in coords],
                              masks=masks, verified=g["verified"]))
        else:
            marks.append(Mark(g["phrase"], boxes=[pixel_from_norm_box(b, w, h) for b in coords], masks=masks,
                              verified=g["verified"]))
    try:
        annotate(image, marks).save(out)
    except (OSError, ValueError) as e:
        usage_error(f"cannot write {out}: {e}")
