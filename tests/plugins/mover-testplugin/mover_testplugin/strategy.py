"""A vendor strategy: whole-object ingest into a store that advertises ``vendor_ingest``.

It wins over mover's built-ins (Priority.PLUGIN) for that destination, and it decides from
what the store advertises, not from the store's class or scheme.
"""

from __future__ import annotations

from mover.motion import Chunk, ChunkContext, Endpoint, Options, Plan, Priority
from mover.provider import ObjectInfo, PartReceipt
from mover.strategies.motion.streaming import StreamingStrategy


class VendorIngestStrategy(StreamingStrategy):
    name = "vendorx-ingest"
    summary = "vendor X's whole-object ingest (test plugin)"
    #: How many chunks this strategy ran, so tests can see it was used.
    chunks_run = 0

    def can_handle(self, source: Endpoint, destination: Endpoint) -> Priority:
        if getattr(destination.store, "vendor_ingest", False) and source.caps.ranged_read:
            return Priority.PLUGIN
        return Priority.CANT_HANDLE

    def plan(self, source: Endpoint, destination: Endpoint, options: Options) -> Plan:
        plan = super().plan(source, destination, options)
        plan.notes.append("ingested by vendorx")
        return plan

    def run_chunk(
        self, source: Endpoint, destination: Endpoint, plan: Plan, chunk: Chunk, ctx: ChunkContext
    ) -> PartReceipt:
        type(self).chunks_run += 1
        return super().run_chunk(source, destination, plan, chunk, ctx)

    def commit(
        self, source: Endpoint, destination: Endpoint, plan: Plan, receipts: list[PartReceipt]
    ) -> ObjectInfo:
        return super().commit(source, destination, plan, receipts)
