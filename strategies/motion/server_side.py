"""Server-side copy: the destination store copies the object by itself, no byte through mover.

CloudStack asks a store's driver ``canCopy`` before any strategy; rclone tries a backend's
``Copy`` when the remotes match and falls back on ``ErrorCantCopy``. Here that is a capability
(``server_side_copy``) plus a question to the destination store
(:meth:`~mover.provider.StoreProvider.can_copy_from`), so this one strategy serves every provider
that can copy by itself (S3's CopyObject and UploadPartCopy, Swift's COPY) without naming any.

The whole object is one chunk: the store's copy is one call (which may itself run parallel part
copies and clean them up if it fails). Running it twice is harmless: the second copy writes the
same bytes again. Nothing is partial between the chunk and the commit, so abort removes
nothing: deleting the destination could remove an object that existed before the copy.
"""

from __future__ import annotations

from mover.errors import VerificationFailed
from mover.motion import Chunk, ChunkContext, Endpoint, MotionStrategy, Options, Plan, Priority
from mover.provider import ObjectInfo, PartReceipt
from mover.strategies.motion.common import known_size, pick_algorithm


class ServerSideCopyStrategy(MotionStrategy):
    name = "server-side"
    summary = "the destination store copies the object itself (no bytes through mover)"

    def can_handle(self, source: Endpoint, destination: Endpoint) -> Priority:
        able = (
            destination.caps.server_side_copy
            and destination.caps.writable
            and source.caps.readable
            and known_size(source) is not None
            # asked last, of a pair that could copy: the store compares its configuration
            and destination.store.can_copy_from(source.store)
        )
        return Priority.SERVER_SIDE if able else Priority.CANT_HANDLE

    def plan(self, source: Endpoint, destination: Endpoint, options: Options) -> Plan:
        assert source.info is not None and source.info.size is not None
        size = source.info.size
        destination.store.check_writable(destination.key, size)
        return Plan(
            strategy=self.name,
            size=size,
            chunk_size=max(size, 1),
            chunks=[Chunk(0, 0, size)],
            algorithm=pick_algorithm(destination),
            writer={},
            bytes_through=0,
            notes=[f"copied by {destination.store.describe()} itself"],
        )

    def run_chunk(
        self, source: Endpoint, destination: Endpoint, plan: Plan, chunk: Chunk, ctx: ChunkContext
    ) -> PartReceipt:
        ctx.check()
        size = plan.size or 0
        info = destination.store.copy_server_side(source.store, source.key, destination.key, size)
        # The object's bytes are done: report them, so progress reaches 100 % (bytes_through
        # stays 0 in the plan, which is what says none passed through mover).
        ctx.progress(size)
        return PartReceipt(
            chunk.index,
            0,
            size,
            "",  # no digest of mover's: the store copied bytes mover never saw
            {"etag": info.etag, "checksum": info.checksum, "size": info.size},
        )

    def commit(
        self, source: Endpoint, destination: Endpoint, plan: Plan, receipts: list[PartReceipt]
    ) -> ObjectInfo:
        info = destination.store.stat(destination.key)
        if plan.size is not None and info.size != plan.size:
            raise VerificationFailed(
                f"{destination.location}: holds {info.size} bytes after a server-side copy, "
                f"expected {plan.size}"
            )
        return info

    def abort(self, source: Endpoint, destination: Endpoint, plan: Plan) -> None:
        """Nothing partial exists: the store's copy cleans up its own part copies."""

    def object_digest(self, plan: Plan, receipts: list[PartReceipt]) -> str:
        """The destination's own checksum, or its ETag: mover read no byte to digest."""
        for r in receipts:
            if r.extra.get("checksum"):
                return str(r.extra["checksum"])
            if r.extra.get("etag"):
                return f"etag:{r.extra['etag']}"
        return ""
