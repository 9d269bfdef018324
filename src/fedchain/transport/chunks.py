"""One offered payload streamed to many organizations at once, each chunk copied once.

grpcio (1.85) sends a message only from ``bytes``, so a stream of ``memoryview`` slices costs
one copy per chunk per stream: sending a model to N organizations copied it N times over.
:class:`SharedChunks` lets the streams that run at the same time share those copies. The
first reader to reach chunk ``i`` copies it out of the payload, every other open reader gets
the same ``bytes`` object, and the chunk is dropped once every open reader has passed it.

Memory: the payload itself is held once, by reference. On top of it at most ``max_held``
chunks are kept (16, so 16 MiB at the default chunk size), whatever the payload size and the
number of readers: a chunk is kept only while some open reader still needs it, and a reader running
further ahead than that gets a copy of its own, as every reader used to. So sharing is between
streams that run close together, as in a round where every organization fetches the new model
at once; a reader that starts after the others have passed a chunk copies it again. A
``bytes`` payload that fits in one chunk is never copied.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque

from fedchain.errors import PayloadError
from fedchain.transport.framing import CHUNK_SIZE, as_byte_view

__all__ = ["ChunkReader", "SharedChunks"]


class SharedChunks:
    """The chunks of one payload for any number of concurrent readers (thread-safe).

    Iterating gives a :class:`ChunkReader`, counted as open from that moment until it is
    exhausted, closed or garbage-collected.
    """

    def __init__(
        self,
        data: bytes | bytearray | memoryview,
        chunk_size: int = CHUNK_SIZE,
        max_held: int = 16,
    ) -> None:
        if chunk_size <= 0 or max_held < 0:
            raise PayloadError(f"bad chunk_size {chunk_size} or max_held {max_held}")
        self._view = as_byte_view(data)
        self._whole = data if type(data) is bytes and len(data) <= chunk_size else None
        self.size = len(self._view)
        self.chunk_size = chunk_size
        self.count = -(-self.size // chunk_size)
        self.max_held = max_held
        #: Chunks copied out of the payload so far (``count`` when every reader shared).
        self.copies = 0
        self._lock = threading.Lock()
        self._held: dict[int, bytes] = {}
        self._next: dict[int, int] = {}  # open reader -> index of its next chunk
        self._ids = itertools.count()
        # Readers garbage-collected without close(): __del__ may run on any thread, even one
        # inside _take holding the lock, so it only appends here (lock-free) and the next
        # locked call forgets them.
        self._dropped: deque[int] = deque()

    @property
    def held(self) -> int:
        """How many chunks are copied out and kept for open readers right now."""
        with self._lock:
            self._forget_dropped()
            self._evict()
            return len(self._held)

    def __iter__(self) -> ChunkReader:
        """A new reader, starting at the first chunk."""
        return ChunkReader(self)

    def _open(self) -> int:
        with self._lock:
            reader = next(self._ids)
            self._next[reader] = 0
            return reader

    def _take(self, reader: int) -> bytes | None:
        """The reader's next chunk, or None at the end (or once the reader is closed)."""
        with self._lock:
            self._forget_dropped()
            index = self._next.get(reader, self.count)
            if index >= self.count:
                return None
            chunk = self._held.get(index)
            if chunk is None:
                chunk = self._whole if self._whole is not None else self._copy(index)
                if len(self._held) < self.max_held:
                    self._held[index] = chunk
            self._next[reader] = index + 1
            self._evict()
            return chunk

    def _copy(self, index: int) -> bytes:
        self.copies += 1
        start = index * self.chunk_size
        return self._view[start : start + self.chunk_size].tobytes()

    def _close(self, reader: int) -> None:
        with self._lock:
            self._next.pop(reader, None)
            self._forget_dropped()
            self._evict()

    def _forget_dropped(self) -> None:
        """Give up the places of garbage-collected readers (lock held; the caller evicts)."""
        while self._dropped:
            self._next.pop(self._dropped.popleft(), None)

    def _evict(self) -> None:
        """Drop the chunks that every open reader has passed (lock held)."""
        low = min(self._next.values(), default=self.count)
        for index in [i for i in self._held if i < low]:
            del self._held[index]


class ChunkReader:
    """One reader's pass over :class:`SharedChunks`, in order.

    ``close()`` (idempotent; also on exhaustion and garbage collection) gives up the reader's
    place, so chunks kept only for it are dropped. ``yield from`` a reader in a generator
    closes it when that generator is closed, e.g. by a cancelled gRPC call.
    """

    def __init__(self, shared: SharedChunks) -> None:
        self._shared = shared
        self._id = shared._open()

    def __iter__(self) -> ChunkReader:
        return self

    def __next__(self) -> bytes:
        chunk = self._shared._take(self._id)
        if chunk is None:
            self.close()
            raise StopIteration
        return chunk

    def close(self) -> None:
        """Stop reading."""
        self._shared._close(self._id)

    def __del__(self) -> None:
        self._shared._dropped.append(self._id)  # no lock here: see SharedChunks._dropped
