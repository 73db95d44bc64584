"""The SQLite trace store (sqlite-utils): runs, images, samples, traces, groundings, masks."""

from vgt_agent.store.records import GroundingRecord, ImageRecord, MaskRecord, SampleRecord, TraceRecord
from vgt_agent.store.trace_store import StoreDamaged, StoreError, StoreLocked, TraceStore

__all__ = ["GroundingRecord", "ImageRecord", "MaskRecord", "SampleRecord", "StoreDamaged", "StoreError", "StoreLocked",
           "TraceRecord", "TraceStore"]
