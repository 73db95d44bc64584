"""The SQLite trace store (sqlite-utils): runs, images, samples, traces, groundings, masks."""

from __future__ import annotations

from typing import TYPE_CHECKING

from vgt_agent.lazy import lazy_getattr

# Loaded on first use, so importing one store module (`locks`, `schema`) or the package does not load
# sqlite-utils, PIL and the records' dependencies up front.
_LAZY = {
    **dict.fromkeys(("GroundingRecord", "ImageRecord", "MaskRecord", "SampleRecord", "TraceRecord"),
                    "vgt_agent.store.records"),
    **dict.fromkeys(("StoreDamaged", "StoreError", "StoreLocked"), "vgt_agent.store.errors"),
    "TraceStore": "vgt_agent.store.trace_store",
}

if TYPE_CHECKING:
    from vgt_agent.store.errors import StoreDamaged, StoreError, StoreLocked
    from vgt_agent.store.records import GroundingRecord, ImageRecord, MaskRecord, SampleRecord, TraceRecord
    from vgt_agent.store.trace_store import TraceStore

__all__ = ["GroundingRecord", "ImageRecord", "MaskRecord", "SampleRecord", "StoreDamaged", "StoreError", "StoreLocked",
           "TraceRecord", "TraceStore"]


__getattr__ = lazy_getattr(__name__, _LAZY)
