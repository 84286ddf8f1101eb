"""Which partition a symbol's messages use: Kafka's default partitioner
(murmur2 of the key bytes, as the Java client and librdkafka's `murmur2_random`
compute it), so a worker can tell from its assigned partitions which symbols
it owns (SPEC Part B.8, B.11)."""

from __future__ import annotations

_M = 0x5BD1E995
_MASK = 0xFFFFFFFF
_SEED = 0x9747B28C


def murmur2(data: bytes) -> int:
    """Kafka's murmur2, as a signed 32-bit integer (org.apache.kafka.common.utils.Utils)."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    end = length - length % 4
    for i in range(0, end, 4):
        k = data[i] | data[i + 1] << 8 | data[i + 2] << 16 | data[i + 3] << 24
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = (h * _M) & _MASK
        h ^= k
    rest = length % 4
    if rest == 3:
        h ^= data[end + 2] << 16
    if rest >= 2:
        h ^= data[end + 1] << 8
    if rest >= 1:
        h ^= data[end]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for(symbol: str, partitions: int) -> int:
    """The partition of `symbol`'s messages among `partitions` (Kafka's toPositive)."""
    return (murmur2(symbol.encode()) & 0x7FFFFFFF) % partitions
