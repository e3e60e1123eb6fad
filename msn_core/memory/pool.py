"""The memory pool M: per-frame cached terms of every frame that may guide later ones.

Each processed frame enters the pool once, with everything later steps need
from it (its propagated label, its MSN terms, its STM key/value, its grey image
for optical flow), so nothing about a memory frame is ever recomputed.

With a budget the pool keeps the first frame, the ``recent`` most recent frames
and evenly spaced older frames, ``budget`` frames in all: the cost of scoring
candidates and the memory held stay flat however long the video is.
``budget=None`` keeps every previous frame (the paper's setting).

Annotated frames (the user's masks, ``MemoryEntry.annotated``) are trusted and never
evicted: when they fill the older part of the pool it holds more than ``budget`` frames.
Indices are positions along a pass of the loop (``msn_core.passes``): the frame index going
forward, the distance from the anchor going backward, so the order is the visiting order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from msn_core.config import MemoryConfig
from msn_core.errors import InputError


@dataclass
class MemoryEntry:
    """What the pool keeps of one frame. ``data`` holds the propagator's and the
    selection network's cached tensors under string keys (e.g. ``"label"``,
    ``"msn_embed"``, ``"msn_terms"``, ``"gray"``, ``"stm_key"``)."""

    index: int
    data: dict[str, Any] = field(default_factory=dict)
    annotated: bool = False  # the user's frame: trusted, never evicted

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)


class FrameNotHeld(InputError, KeyError):
    """A frame asked of the pool that it does not hold (never added, or evicted by the budget),
    e.g. a guide a custom selector chose outside its candidates. Still a KeyError for lookups."""

    __str__ = Exception.__str__  # the message as written, not KeyError's quoted repr


class MemoryPool:
    """Ordered frames that can serve as guides, with an optional budget."""

    def __init__(self, cfg: MemoryConfig | None = None):
        self.cfg = cfg or MemoryConfig()
        if self.cfg.budget is not None:
            if self.cfg.budget < 2:
                raise InputError(
                    f"memory budget must be >= 2 (the first frame and one more) or None (keep every frame), "
                    f"got {self.cfg.budget}"
                )
            if not 1 <= self.cfg.recent < self.cfg.budget:
                raise InputError(
                    f"memory 'recent' must be in [1, budget-1] = [1, {self.cfg.budget - 1}], got {self.cfg.recent}"
                )
        self._entries: dict[int, MemoryEntry] = {}
        self.evicted_total = 0

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, index: int) -> bool:
        return index in self._entries

    def __getitem__(self, index: int) -> MemoryEntry:
        try:
            return self._entries[index]
        except KeyError:
            raise FrameNotHeld(f"frame {index} is not in the memory pool; held: {self.indices()}") from None

    def indices(self) -> list[int]:
        """Indices of the frames held, ascending."""
        return sorted(self._entries)

    def annotated_indices(self) -> list[int]:
        """Indices of the annotated frames held, ascending."""
        return [i for i in self.indices() if self._entries[i].annotated]

    @property
    def first(self) -> MemoryEntry:
        return self._entries[min(self._entries)]

    @property
    def references(self) -> list[MemoryEntry]:
        """The frames a propagation reads besides its guide: every annotated frame held, in
        visiting order (the first frame when none is flagged)."""
        marked = [self._entries[i] for i in self.annotated_indices()]
        return marked or [self.first]

    @property
    def last(self) -> MemoryEntry:
        return self._entries[max(self._entries)]

    # ------------------------------------------------------------------ update
    def add(self, entry: MemoryEntry) -> list[int]:
        """Insert a frame (indices must increase) and evict to the budget.
        Returns the indices evicted."""
        if self._entries and entry.index <= max(self._entries):
            raise InputError(
                f"frames must enter the pool in increasing order: got {entry.index} after {max(self._entries)}"
            )
        self._entries[entry.index] = entry
        evicted = []
        budget = self.cfg.budget
        while budget is not None and len(self._entries) > budget:
            victim = self._choose_victim()
            if victim is None:  # every older frame is annotated: they all stay
                break
            del self._entries[victim]
            evicted.append(victim)
        self.evicted_total += len(evicted)
        return evicted

    def _choose_victim(self) -> int | None:
        """Among older frames (not the first, not the ``recent`` newest, not annotated), drop the
        one whose removal leaves the smallest gap: older frames stay evenly spaced. None when
        every older frame is annotated."""
        idx = self.indices()
        protected_tail = self.cfg.recent
        # older region: idx[1 : len - recent]; neighbours may be the first frame or the recent block
        best, best_gap = None, None
        for k in range(1, len(idx) - protected_tail):
            if self._entries[idx[k]].annotated:
                continue
            gap = idx[k + 1] - idx[k - 1]
            if best_gap is None or gap < best_gap:
                best, best_gap = idx[k], gap
        return best


def pool_history(
    n_frames: int, cfg: MemoryConfig | None = None, annotated: frozenset[int] | set[int] = frozenset()
) -> list[list[int]]:
    """What a pool with ``cfg`` holds when each frame t < ``n_frames`` is processed (frames 0..t-1
    added in order and evicted by the pool's own rule, the ``annotated`` ones never): the
    candidates a selector sees at t, ``[]`` at t = 0. Stage-2 mining takes its candidates from
    here, so they are the ones a run offers."""
    pool = MemoryPool(cfg)
    held = []
    for t in range(n_frames):
        held.append(pool.indices())
        pool.add(MemoryEntry(t, annotated=t in annotated))
    return held
