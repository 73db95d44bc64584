"""A writer process for the store's crash and concurrency tests: writes N traces, one transaction each.

Usage: python tests/store_writer.py DB IMAGE RUN_ID N [GROUNDINGS_PER_TRACE]
Prints "committed <i>" after each commit so the parent knows what must survive a SIGKILL.
"""

from __future__ import annotations

import sys

from vgt_agent.store import GroundingRecord, ImageRecord, MaskRecord, SampleRecord, TraceRecord, TraceStore


def make_trace(run_id: str, image: ImageRecord, i: int, n_groundings: int) -> TraceRecord:
    """A deterministic trace whose content can be checked for completeness after a crash."""
    sample = SampleRecord("crash", "test", f"s{i}", f"question {i}?", image, str(i), "count")
    groundings = [GroundingRecord(f"thing {j}", "point", [[j, i % 1000]]) for j in range(n_groundings)]
    rle = {"size": [4, 4], "counts": "04"}
    masks = [MaskRecord(f"thing {j}", rle, [0, 0, 1, 1], [0, 0], 1.0, "test", j) for j in range(n_groundings)]
    return TraceRecord(run_id, sample, "agent", completion=f"answer {i} " + "x" * 2000, answer=str(i),
                       correct=True, groundings=groundings, masks=masks, meta={"n": n_groundings})


def main() -> None:
    db, image_path, run_id, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    per = int(sys.argv[5]) if len(sys.argv) > 5 else 50
    image = ImageRecord.from_path(image_path)
    with TraceStore.open(db) as store:
        store.start_run("test", run_id=run_id)
        for i in range(n):
            store.put_trace(make_trace(run_id, image, i, per))
            print(f"committed {i}", flush=True)


if __name__ == "__main__":
    main()
