"""What proxies do wrong, told once: the first time in full, repeats as a count.

A proxy that rejects a config says so on every request until the config changes, and a broken
or hostile client can send thousands of bad requests a second: 5,000 NACKs of one response once
wrote 15,000 log lines (7 MB) in 11 s. So each event has a key (proxy, type, version, ...): the
first occurrence is logged and counted, repeats are only counted and summarised in one line at
most every `interval` seconds, and when the proxy disconnects. The keys are bounded (oldest
forgotten first), so distinct garbage cannot grow memory either.

Pure bookkeeping with an injected clock; the caller logs.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

Key = tuple[Hashable, ...]  # (who, what, ...): the first item names the proxy
INTERVAL = 60.0  # seconds between two summaries of one key
CAPACITY = 4096  # keys remembered


@dataclass(frozen=True, slots=True)
class Note:
    first: bool  # log and count it
    repeats: int = 0  # repeats not told yet, to summarise now; 0: say nothing


@dataclass(slots=True)
class _Seen:
    told_at: float  # when a line was last written for this key
    repeats: int = 0  # since then


class Repeats:
    def __init__(
        self,
        *,
        interval: float = INTERVAL,
        capacity: int = CAPACITY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval, self.capacity, self.clock = interval, capacity, clock
        self._seen: OrderedDict[Key, _Seen] = OrderedDict()

    def note(self, key: Key) -> Note:
        now = self.clock()
        seen = self._seen.get(key)
        if seen is None:
            self._seen[key] = _Seen(now)
            if len(self._seen) > self.capacity:
                self._seen.popitem(last=False)
            return Note(first=True)
        self._seen.move_to_end(key)
        seen.repeats += 1
        if now - seen.told_at < self.interval:
            return Note(first=False)
        repeats, seen.repeats, seen.told_at = seen.repeats, 0, now
        return Note(first=False, repeats=repeats)

    def flush(self, owner: Hashable) -> list[tuple[Key, int]]:
        """Repeats not told yet of the keys whose first item is `owner` (a proxy leaving).

        The keys stay: a proxy that reconnects and repeats itself is not told in full again.
        """
        out: list[tuple[Key, int]] = []
        for key, seen in self._seen.items():
            if seen.repeats and key[0] == owner:
                out.append((key, seen.repeats))
                seen.repeats, seen.told_at = 0, self.clock()
        return out
