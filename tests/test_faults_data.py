"""The data-side faults found by trying to break vgt, one test each, named for the fault, its repro in the
docstring: parsers of model output, the store (merge, corruption, locks, read-only media, export targets) and
image decoding. Every test here failed on the code before its fix; in a parametrised one, the cases that
already passed (JSONL onto a directory, CMYK and animated images) stay as guards beside the failing ones.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from vgt_agent.cli.main import run
from vgt_agent.images import load_image
from vgt_agent.store import GroundingRecord, ImageRecord, MaskRecord, SampleRecord, TraceRecord, TraceStore


class _TooSlow(Exception):
    pass


@contextlib.contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    """Fail the block after `seconds` of wall time (the regex engine checks signals, so a runaway match stops)."""

    def expire(*_: Any) -> None:
        raise _TooSlow(f"took longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _seconds(fn: Callable[[str], Any], text: str, limit: float) -> float:
    start = time.perf_counter()
    with _deadline(limit):
        fn(text)
    return time.perf_counter() - start


# ---- parsers of model output ---------------------------------------------------------------------------


def test_answer_tag_with_a_whitespace_run_is_not_cubic() -> None:
    """`extract_answer("<answer>" + " " * 4000)` took 20 s (a lazy `.*?` between `\\s*`s backtracks cubically)."""
    from vgt_agent.answers import extract_answer

    assert _seconds(extract_answer, "<answer>" + " " * 100_000, 2.0) < 2.0


def test_repeated_answer_openers_are_not_quadratic() -> None:
    """`extract_answer("<answer>" * 20_000)` (160 KB) took 65 s: every opener scanned to the end for a closer."""
    from vgt_agent.answers import extract_answer

    assert _seconds(extract_answer, "<answer>" * 20_000, 2.0) < 2.0


def test_a_boxed_count_past_the_int_digit_limit_is_read_not_raised() -> None:
    """`check_answer("\\boxed{" + "1" * 5000 + "}", 3, "count")` raised ValueError (int() refuses > 4300 digits),
    crashing the reward or eval that scored it."""
    from vgt_agent.answers import check_answer, normalise_count

    check = check_answer("\\boxed{" + "1" * 5000 + "}", 3, "count")
    assert check.correct is False and check.predicted == "1" * 5000
    assert normalise_count("0" * 6000 + "7") == "7"


def test_router_reply_of_blank_lines_is_not_quadratic() -> None:
    """`parse_router_reply("\\n" * 100_000, 5, 5)` took minutes: `^\\W*` ran from every line start to the end."""
    from vgt_agent.reference_routing import parse_router_reply

    assert _seconds(lambda s: parse_router_reply(s, 5, 5), "\n" * 100_000, 2.0) < 2.0
    assert _seconds(lambda s: parse_router_reply(s, 5, 5), "-\n" * 50_000, 2.0) < 2.0


def test_extractor_fence_strip_on_a_whitespace_run_is_not_quadratic() -> None:
    """The LLM extractor's fence regex `\\s*```$` on `"{" + " " * 100_000 + "}"` took 40 s: every position of
    the run scanned it to its end."""
    from vgt_agent.synthesis import extract

    assert _seconds(lambda s: extract._FENCE.sub("", s), "{" + " " * 100_000 + "}", 2.0) < 2.0


def test_grounding_agent_tool_call_of_repeated_openers_is_not_quadratic() -> None:
    """`parse_tool_call("<tool>" * 30_000)` took seconds: `<tool>(.*?)</tool>` scanned to the end per opener."""
    from vgt_agent.synthesis.vlm_policy import parse_tool_call

    assert _seconds(parse_tool_call, "<tool>" * 30_000, 2.0) < 2.0


# ---- the trace store -----------------------------------------------------------------------------------


@pytest.fixture
def image(tmp_path: Path) -> ImageRecord:
    path = tmp_path / "scene.png"
    Image.new("RGB", (64, 48), (200, 30, 30)).save(path)
    return ImageRecord.from_path(path)


def _trace(run: str, image: ImageRecord, key: str = "k0", variant: str = "agent", attempt: int = 0,
           n_groundings: int = 1, completion: str = "\\boxed{2}") -> TraceRecord:
    sample = SampleRecord("world-tally", "test", key, "How many red circles are there?", image, "2", "count")
    groundings = [GroundingRecord(f"red circle {i}", "point", [[100 + i, 200]]) for i in range(n_groundings)]
    masks = [MaskRecord(f"red circle {i}", {"size": [48, 64], "counts": "0"}, [0, 0, 1, 1], [1, 1], 1.0, "world", i)
             for i in range(n_groundings)]
    return TraceRecord(run, sample, variant, attempt=attempt, completion=completion, answer="2", correct=True,
                       groundings=groundings, masks=masks, backend="test", model="m", grounder="world")


def _store(path: Path, *traces: Callable[[str], TraceRecord], run_id: str = "synth-same") -> Path:
    with TraceStore.open(path) as store:
        run = store.start_run("synth", run_id=run_id, backend="test", model="m", grounder="world")
        for make in traces:
            store.put_trace(make(run))
    return path


def _vgt(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = run(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_merge_of_one_trace_id_with_different_content_leaves_no_stale_groundings(
        tmp_path: Path, image: ImageRecord, capsys: pytest.CaptureFixture[str]) -> None:
    """`vgt traces merge a.db b.db -o m.db`, both holding one trace id with different content (the same run on
    two machines with a sampled teacher): the trace became b's (`n_groundings` 1) but a's three groundings and
    masks stayed, and `traces show` listed 3."""
    a = _store(tmp_path / "a.db", lambda run: _trace(run, image, n_groundings=3, completion="three \\boxed{2}"))
    b = _store(tmp_path / "b.db", lambda run: _trace(run, image, n_groundings=1, completion="one \\boxed{2}"))
    merged = tmp_path / "m.db"
    code, out, _ = _vgt(["traces", "merge", str(a), str(b), "-o", str(merged), "--json"], capsys)
    assert code == 0
    with TraceStore.open(merged, create=False, readonly=True) as store:
        (row,) = store.traces()
        full = store.trace(row["id"])
        assert full["completion"] == "one \\boxed{2}" and full["n_groundings"] == 1
        assert len(full["groundings"]) == 1 and len(full["masks"]) == 1
        assert store.db["groundings"].count == 1 and store.db["masks"].count == 1
    assert json.loads(out)["merged"][str(b)]["conflicts"] == 1
    code, out, _ = _vgt(["traces", "merge", str(b), "-o", str(merged), "--json"], capsys)
    assert code == 0 and json.loads(out)["merged"][str(b)]["identical"] == 1


def test_run_totals_count_every_trace_row_of_the_run(tmp_path: Path, image: ImageRecord) -> None:
    """`run_totals(store, run).traces` said 800 for a run with 1,400 trace rows: it counted the distinct
    (variant, status) pairs of each sample, so several attempts of one variant (candidates) counted once."""
    from vgt_agent.synthesis.run import run_totals

    rows = [functools.partial(_trace, image=image, key=f"k{k}", variant=variant, attempt=attempt)
            for k in range(3) for variant, attempt in (("candidate", 0), ("candidate", 1), ("candidate", 2),
                                                       ("plain", 0), ("box", 0))]
    path = _store(tmp_path / "t.db", *[lambda run, make=make: make(run) for make in rows])
    with TraceStore.open(path) as store:
        assert store.db["traces"].count == 15
        assert run_totals(store, "synth-same")["traces"] == 15


def test_show_by_id_does_not_treat_percent_or_underscore_as_wildcards(
        tmp_path: Path, image: ImageRecord, capsys: pytest.CaptureFixture[str]) -> None:
    """`vgt traces show %%%%` showed the store's only trace (the id went into SQL `LIKE` as a pattern);
    `--search 100%` matched every question."""
    path = _store(tmp_path / "t.db", lambda run: _trace(run, image))
    for pattern in ("%%%%", "____", "%_%_"):
        code, _, err = _vgt(["traces", "show", pattern, "--db", str(path)], capsys)
        assert code == 2 and "no trace" in _one_line(err)
    with TraceStore.open(path, create=False, readonly=True) as store:
        (row,) = store.traces()
        assert store.trace(row["id"][:6])["id"] == row["id"]
        assert store.trace(row["id"][:5] + "%") is None and store.trace(row["id"][:5] + "_") is None
        assert list(store.traces(search="red")) and not list(store.traces(search="100%"))


@pytest.mark.parametrize("target", ["existing file", "non-empty directory", "read-only directory"])
@pytest.mark.parametrize("fmt", ["jsonl", "hf"])
def test_export_never_overwrites_or_writes_beside_the_users_files(
        target: str, fmt: str, tmp_path: Path, image: ImageRecord, capsys: pytest.CaptureFixture[str]) -> None:
    """`vgt traces export -o EXISTING` replaced the user's file (jsonl) or raised a traceback (hf); `-o DIR`
    with files in it wrote the dataset beside them; a read-only directory gave a traceback. Now: exit 2, one
    line, nothing written."""
    path = _store(tmp_path / "t.db", lambda run: _trace(run, image))
    if target == "existing file":
        out = tmp_path / "mine.txt"
        out.write_text("the user's notes\n")
    elif target == "non-empty directory":
        out = tmp_path / "results"
        out.mkdir()
        (out / "notes.txt").write_text("the user's notes\n")
    else:
        parent = _read_only_dir(tmp_path / "ro")
        out = parent / ("out.jsonl" if fmt == "jsonl" else "dataset")
    before = _listing(tmp_path)
    code, _, err = _vgt(["traces", "export", "--db", str(path), "-o", str(out), "--format", fmt], capsys)
    assert code == 2, err
    _one_line(err)
    assert _listing(tmp_path) == before


def _listing(root: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))
            if not p.name.startswith("t.db")}


def _read_only_dir(path: Path) -> Path:
    """A directory nobody can write to: a read-only mount when running as root (root ignores permissions),
    else mode 0555."""
    path.mkdir()
    if os.geteuid() != 0:
        path.chmod(0o555)
        return path
    if shutil.which("mount") is None or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=4m,ro", "tmpfs", str(path)], capture_output=True).returncode:
        pytest.skip("running as root without the right to mount a read-only tmpfs")
    _MOUNTS.append(path)
    return path


_MOUNTS: list[Path] = []


@pytest.fixture(autouse=True)
def _unmount() -> Iterator[None]:
    yield
    while _MOUNTS:
        subprocess.run(["umount", "-l", str(_MOUNTS.pop())], check=False)


def _read_only_copy(store: Path, where: Path) -> Path:
    """`store` (closed, its WAL merged) on read-only media."""
    where.mkdir()
    if os.geteuid() != 0:
        shutil.copy(store, where / store.name)
        where.chmod(0o555)
        return where / store.name
    if shutil.which("mount") is None or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(where)], capture_output=True).returncode:
        pytest.skip("running as root without the right to mount a tmpfs")
    _MOUNTS.append(where)
    shutil.copy(store, where / store.name)
    subprocess.run(["mount", "-o", "remount,ro", str(where)], check=True)
    return where / store.name


@pytest.mark.parametrize("command", ["list", "stats", "runs", "show", "export"])
def test_a_store_on_read_only_media_can_be_read(command: str, tmp_path: Path, image: ImageRecord,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """`vgt traces list --db /media/cdrom/t.db`: "unable to open database file", exit 2 (a read-only open of a
    WAL store still creates its `-shm` file)."""
    store = _read_only_copy(_store(tmp_path / "t.db", lambda run: _trace(run, image)), tmp_path / "media")
    with TraceStore.open(tmp_path / "t.db", create=False, readonly=True) as s:
        (row,) = s.traces()
    extra = {"show": [row["id"][:8]], "export": ["-o", str(tmp_path / "out.jsonl")]}.get(command, [])
    code, out, err = _vgt(["traces", command, *extra, "--db", str(store), "--json"], capsys)
    assert code == 0, err
    assert row["id"][:8] in (out if command != "export" else (tmp_path / "out.jsonl").read_text()) or \
        command in ("stats", "runs")


def _damage_a_page(path: Path, seed: int) -> None:
    """Overwrite one page in the middle of the file with random bytes (as a failing disk or a bad copy does)."""
    size, page = path.stat().st_size, 4096
    index = size // page // 2
    with path.open("r+b") as f:
        f.seek(index * page)
        f.write(random.Random(seed).randbytes(page))


@pytest.fixture
def damaged_store(tmp_path: Path, image: ImageRecord) -> Path:
    path = _store(tmp_path / "t.db", *[functools.partial(lambda run, k: _trace(run, image, key=f"k{k}", n_groundings=4),
                                                         k=k) for k in range(300)])
    _damage_a_page(path, seed=1)
    return path


def test_check_finds_a_damaged_page_and_exits_1(damaged_store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A page of random bytes in the middle of a store: `stats`/`list` exited 0 and `export` crashed; there
    was no way to ask whether a store is sound. `vgt traces check` runs SQLite's integrity check and vgt's
    schema check, prints what is wrong and exits 1."""
    code, out, err = _vgt(["traces", "check", "--db", str(damaged_store), "--json"], capsys)
    assert code == 1, (out, err)
    report = json.loads(out)
    assert report["ok"] is False and report["problems"]
    code, _, err = _vgt(["traces", "check", "--db", str(damaged_store)], capsys)
    assert code == 1 and "damaged" in err


def test_check_passes_a_sound_store_and_flags_stale_children(tmp_path: Path, image: ImageRecord,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """A sound store checks ok (exit 0); groundings left beyond a trace's `n_groundings` (what the old merge
    left behind) are reported."""
    path = _store(tmp_path / "t.db", lambda run: _trace(run, image, n_groundings=2))
    code, out, _ = _vgt(["traces", "check", "--db", str(path), "--json"], capsys)
    assert code == 0 and json.loads(out)["ok"] is True
    with sqlite3.connect(path) as conn:
        conn.execute("update traces set n_groundings = 1")
    code, out, _ = _vgt(["traces", "check", "--db", str(path), "--json"], capsys)
    assert code == 1 and any("n_groundings" in p for p in json.loads(out)["problems"])


@pytest.mark.parametrize("command", ["list", "stats", "runs", "export"])
def test_reading_a_damaged_store_is_one_line_and_exit_1(command: str, damaged_store: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """Reading a store with a damaged page: a 40-line `sqlite3.DatabaseError` traceback, or exit 0 with what
    could be read. Now one line naming the file and `vgt traces check`, exit 1; export writes nothing."""
    extra = ["-o", str(tmp_path / "out.jsonl")] if command == "export" else []
    code, _, err = _vgt(["traces", command, *extra, "--db", str(damaged_store)] + (["--limit", "1000"] if command
                                                                                   == "list" else []), capsys)
    assert code == 1, err
    assert "traces check" in _one_line(err)
    assert not (tmp_path / "out.jsonl").exists()


def test_a_store_locked_by_another_writer_says_who_and_gives_up_after_the_lock_timeout(
        tmp_path: Path, image: ImageRecord, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A store whose write lock another process holds: a 45-line "database is locked" traceback after 60 s.
    Now the writer waits `--lock-timeout` / VGT_LOCK_TIMEOUT seconds, then one line naming the holder's pid, exit 1."""
    source = _store(tmp_path / "a.db", lambda run: _trace(run, image))
    target = _store(tmp_path / "m.db", lambda run: _trace(run, image, key="other"))
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(target)], stdout=subprocess.PIPE, text=True)
    monkeypatch.setenv("VGT_LOCK_TIMEOUT", "30")  # the option wins over the environment
    try:
        assert holder.stdout.readline().strip() == "locked"
        start = time.monotonic()
        with _deadline(20):
            code, _, err = _vgt(["--lock-timeout", "1", "traces", "merge", str(source), "-o", str(target)], capsys)
        waited = time.monotonic() - start
    finally:
        holder.kill()
        holder.wait()
    assert code == 1, err
    line = _one_line(err)
    assert f"pid {holder.pid}" in line and "locked" in line and "VGT_LOCK_TIMEOUT" in line
    assert 1 <= waited < 10
    with TraceStore.open(target, create=False, readonly=True) as store:
        assert store.db["traces"].count == 1


HOLD_LOCK = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1])
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(60)
"""


# ---- image decoding ------------------------------------------------------------------------------------

RED, BLUE, WHITE = (220, 30, 30), (30, 30, 220), (255, 255, 255)


def _upright() -> np.ndarray:
    """A 40 x 24 picture (wider than tall) with a red block in its top-left corner, blue elsewhere."""
    pixels = np.zeros((24, 40, 3), np.uint8)
    pixels[:] = BLUE
    pixels[:6, :8] = RED
    return pixels


def _with_exif_orientation(path: Path) -> np.ndarray:
    """The upright picture stored rotated, with the EXIF orientation (6: rotate 90 degrees clockwise to view)
    a camera writes for a portrait shot; returns the upright pixels a viewer shows."""
    upright = _upright()
    stored = np.rot90(upright, k=1)  # counter-clockwise: viewing it rotated clockwise gives the upright picture
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.ascontiguousarray(stored)).save(path, exif=exif.tobytes(), quality=100, subsampling=0)
    return upright


def _image_kind(kind: str, path: Path) -> np.ndarray:
    """Write an image of `kind` at `path` with PIL/numpy (not vgt) and return the RGB a viewer shows."""
    if kind == "exif-rotated jpeg":
        return _with_exif_orientation(path)
    if kind == "16-bit grayscale png":
        ramp = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (8, 1))
        Image.fromarray(ramp).save(path)
        return np.repeat(np.round(ramp / 257).astype(np.uint8)[..., None], 3, axis=2)
    if kind == "cmyk jpeg":
        Image.new("CMYK", (32, 16), (0, 255, 255, 0)).save(path, quality=100)  # full magenta + yellow: red
        return np.full((16, 32, 3), (255, 0, 0), np.uint8)
    if kind in ("rgba png", "la png", "palette png with transparency"):
        rgba = np.zeros((8, 12, 4), np.uint8)
        rgba[:, :4] = (*RED, 255)  # opaque red
        rgba[:, 4:8] = (*RED, 0)  # transparent: white
        rgba[:, 8:] = (*RED, 128)  # half: half-way to white
        expected = np.empty((8, 12, 3), np.uint8)
        expected[:, :4], expected[:, 4:8] = RED, WHITE
        expected[:, 8:] = np.round(np.array(RED) * 128 / 255 + 255 * (1 - 128 / 255)).astype(np.uint8)
        if kind == "rgba png":
            Image.fromarray(rgba).save(path)
        elif kind == "la png":
            gray = np.full((8, 12), 90, np.uint8)
            Image.fromarray(np.dstack([gray, rgba[..., 3]]), "LA").save(path)
            alpha = rgba[..., 3] / 255
            value = np.round(90 * alpha + 255 * (1 - alpha)).astype(np.uint8)
            return np.repeat(value[..., None], 3, axis=2)
        else:
            index = np.where(rgba[..., 3] == 0, 1, 0).astype(np.uint8)  # 0: red, 1: green declared transparent
            image = Image.fromarray(index, "P")
            image.putpalette([*RED, 0, 255, 0])
            image.save(path, transparency=1)
            expected[:, 8:] = RED
        return expected
    if kind == "animated gif":
        frames = [Image.new("RGB", (16, 16), RED), Image.new("RGB", (16, 16), BLUE)]
        frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
        return np.full((16, 16, 3), RED, np.uint8)
    raise ValueError(kind)


IMAGE_KINDS = ["exif-rotated jpeg", "16-bit grayscale png", "cmyk jpeg", "rgba png", "la png",
               "palette png with transparency", "animated gif"]


@pytest.mark.parametrize("kind", IMAGE_KINDS)
def test_images_decode_as_a_viewer_shows_them(kind: str, tmp_path: Path) -> None:
    """16-bit grayscale PNGs decoded all white; EXIF orientation was ignored (the model saw the stored pixels,
    rotated); transparency came out black. Every kind now decodes as a viewer shows it, and the stored image
    record has the size the model sees."""
    suffix = next(f".{ext}" for ext in ("jpeg", "png", "gif") if ext in kind.split())
    path = tmp_path / f"image{suffix}"
    expected = _image_kind(kind, path)
    got = np.asarray(load_image(path))
    assert got.shape == expected.shape and got.dtype == np.uint8
    tolerance = 12 if "jpeg" in kind else 1
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= tolerance
    record = ImageRecord.from_path(path)
    assert (record.width, record.height) == (expected.shape[1], expected.shape[0])


def test_world_grounder_points_land_in_the_upright_frame_of_an_exif_rotated_photo(tmp_path: Path) -> None:
    """A world scene saved rotated with its EXIF orientation: the grounder's point was (265, 836) in the stored
    frame where the upright picture a user sees has the object at (157, 262)."""
    from vgt_agent.grounders.world import WorldGrounder
    from vgt_agent.world.storage import load_split, make_split

    make_split(tmp_path / "w", "world-tally", n=4)
    sample = next(s for s in load_split(tmp_path / "w") if s.answer != "0" and s.question.endswith(" are there?"))
    upright = Image.open(sample.image_path).convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 8  # stored rotated clockwise: view it rotated 90 degrees counter-clockwise
    rotated = tmp_path / "rotated.png"
    upright.transpose(Image.Transpose.ROTATE_270).save(rotated, exif=exif.tobytes())
    grounder, phrase = WorldGrounder(), sample.question.removeprefix("How many ").removesuffix(" are there?")
    seen = load_image(rotated)
    assert seen.size == upright.size and np.array_equal(np.asarray(seen), np.asarray(upright))
    found, expected = grounder.ground(seen, phrase), grounder.ground(upright, phrase)
    assert len(expected) > 0 and [i.point for i in found] == [i.point for i in expected]


def test_hf_export_embeds_images_as_vgt_decodes_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`vgt traces export --format hf` handed `datasets` the path of a 16-bit PNG, which it decodes clipped to
    white: SFT trained on white images while `vgt ask` saw the picture."""
    import datasets

    path = tmp_path / "gray16.png"
    expected = _image_kind("16-bit grayscale png", path)
    db = _store(tmp_path / "t.db", lambda run: _trace(run, ImageRecord.from_path(path)))
    code, _, err = _vgt(["traces", "export", "--db", str(db), "-o", str(tmp_path / "hf"), "--format", "hf"], capsys)
    assert code == 0, err
    image = datasets.load_from_disk(str(tmp_path / "hf"))[0]["images"][0]
    assert np.abs(np.asarray(image.convert("RGB")).astype(int) - expected.astype(int)).max() <= 1
