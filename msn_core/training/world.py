"""A synthetic video world: endless, seeded short clips with exact ground truth, made only from
real frames and masks, where the guide is the only way to know what to segment.

Each clip has a real background frame moved along a smooth camera path (shift, zoom, rotation, mild
perspective) and 1 to 5 objects, each with its own motion, scale, rotation and shear:

- ``cutout``: a real object cut out frame after frame from a real sequence (it keeps its
  articulation);
- ``texture``: real texture (a crop of a real frame) in a random blob shape;
- ``background``: a blob of the background itself that moves with the camera: nothing but the
  annotation tells it apart.

Objects have a depth order (background pieces at the back), pass in front of one another, may leave
the frame and come back; a look-alike (a copy of a marked object) is added to some clips; light
drifts and some frames are blurred. The *target* is a random subset of the objects visible in frame
0, numbered 1..k in :meth:`WorldClip.labels`: the only way to know which objects are wanted is the
first frame's annotation. Masks are exact: an object's visible mask is its shape minus the shapes of
every object in front of it (:meth:`WorldClip.visible`). A seed always gives the same clip.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from msn_core.errors import InputError
from msn_core.training.data import VIEW_SEP, SequenceData

KINDS = ("cutout", "texture", "background")
KIND_P = (0.5, 0.3, 0.2)
MAX_OBJECTS = 5
MIN_VISIBLE = 0.004  # a marked object covers at least this fraction of frame 0


@dataclass
class WorldClip:
    """One synthetic clip. Objects are numbered 0..N-1 in ``shapes``; ``depth`` lists them back
    to front; ``targets`` are the marked objects (label ids 1..k in that order)."""

    frames: np.ndarray  # (T, H, W, 3) uint8
    shapes: np.ndarray  # (T, N, H, W) bool: each object's full shape, occluded or not
    depth: tuple[int, ...]  # object indices, back to front
    kinds: tuple[str, ...]  # one of KINDS per object
    targets: tuple[int, ...]  # marked object indices
    copy_of: tuple[int, ...]  # per object: the object it is a look-alike of, or -1
    seed: int

    def __len__(self) -> int:
        return len(self.frames)

    def visible(self) -> np.ndarray:
        """(T, N, H, W) bool: each object's shape minus everything in front of it."""
        out = np.zeros_like(self.shapes)
        front = np.zeros((len(self), *self.shapes.shape[2:]), bool)
        for o in reversed(self.depth):
            out[:, o] = self.shapes[:, o] & ~front
            front |= self.shapes[:, o]
        return out

    def instance_ids(self) -> np.ndarray:
        """(T, H, W) uint8: 0 background, o + 1 where object o is seen."""
        ids = np.zeros((len(self), *self.shapes.shape[2:]), np.uint8)
        for o in self.depth:  # painted back to front: the front object wins
            ids[self.shapes[:, o]] = o + 1
        return ids

    def labels(self) -> np.ndarray:
        """(T, H, W) uint8 ground truth: target i (in ``targets`` order) as id i + 1, rest 0."""
        ids = self.instance_ids()
        out = np.zeros_like(ids)
        for i, o in enumerate(self.targets):
            out[ids == o + 1] = i + 1
        return out

    def as_sequence(self, name: str | None = None) -> SequenceData:
        """The clip as a training sequence (masks = :meth:`labels`)."""
        h, w = self.frames.shape[1:3]
        return SequenceData(name or f"world{VIEW_SEP}{self.seed}", self.frames, self.labels(), (h, w))


# ----------------------------------------------------------------------------- geometry


def _smooth_walk(rng: np.random.Generator, length: int, scale: float, limit: float) -> np.ndarray:
    """A smooth random path starting at 0: integrated random-walk velocities, clipped."""
    vel = np.cumsum(rng.normal(0.0, scale, size=length), axis=0)
    vel[0] = 0.0
    return np.clip(np.cumsum(vel), -limit, limit)


def _camera_paths(rng: np.random.Generator, length: int, size: tuple[int, int]) -> list[np.ndarray]:
    """3x3 homographies of a smooth camera path: shift, zoom (>= 1, so the borders stay
    filled mostly), rotation and a little perspective."""
    h, w = size
    tx, ty = _smooth_walk(rng, length, 0.8, w / 6), _smooth_walk(rng, length, 0.6, h / 6)
    zoom = 1.08 + np.abs(_smooth_walk(rng, length, 0.004, 0.25))
    rot = _smooth_walk(rng, length, 0.25, 10.0)
    px, py = _smooth_walk(rng, length, 2e-6, 4e-4), _smooth_walk(rng, length, 2e-6, 4e-4)
    out = []
    for i in range(length):
        a = np.eye(3)
        a[:2] = cv2.getRotationMatrix2D((w / 2, h / 2), float(rot[i]), float(zoom[i]))
        a[:2, 2] += (tx[i], ty[i])
        p = np.eye(3)
        p[2, :2] = (px[i], py[i])
        c, ci = np.eye(3), np.eye(3)  # perspective about the centre
        c[:2, 2], ci[:2, 2] = (-w / 2, -h / 2), (w / 2, h / 2)
        out.append(ci @ p @ c @ a)
    return out


def _object_motion(
    rng: np.random.Generator, length: int, size: tuple[int, int], start: tuple[float, float]
) -> list[np.ndarray]:
    """2x3 affines placing an object's anchor on its path: a sway (which can carry it out of the
    frame and back) plus a random walk, with its own rotation, scale pulse and shear."""
    h, w = size
    t = np.arange(length, dtype=np.float64)
    amp = rng.uniform(0.0, 0.6, size=2) * (w, h)
    omega = rng.uniform(0.05, 0.35)
    omega = min(omega, 0.09 * w / max(amp[0], 1.0))  # at most ~9 % of the width per frame
    phase = rng.uniform(0, 2 * np.pi, size=2)
    sway = amp[:, None] * (np.sin(omega * t[None] + phase[:, None]) - np.sin(phase[:, None]))
    x = start[0] + sway[0] + _smooth_walk(rng, length, 0.8, w)
    y = start[1] + sway[1] + _smooth_walk(rng, length, 0.8, h)
    rot = rng.uniform(-20, 20) + rng.uniform(-3, 3) * t
    scale = 1.0 + rng.uniform(0, 0.15) * np.sin(rng.uniform(0.1, 0.5) * t + rng.uniform(0, 6.3))
    shear = rng.uniform(0, 0.2) * np.sin(rng.uniform(0.1, 0.6) * t + rng.uniform(0, 6.3))
    out = []
    for i in range(length):
        m = cv2.getRotationMatrix2D((0.0, 0.0), float(rot[i]), float(scale[i]))
        m = m @ np.array([[1.0, shear[i], 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
        m[:, 2] = (x[i], y[i])
        out.append(m)
    return out


def _blob(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A random smooth blob filling most of an (h, w) box, (h, w) bool."""
    noise = cv2.resize(rng.random((5, 5)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.sqrt(((yy - h / 2) / (h / 2)) ** 2 + ((xx - w / 2) / (w / 2)) ** 2)
    return (noise * 0.8 + (1.0 - r)) > 0.55


# ------------------------------------------------- one frame on a camera path (adaptation)


def synthetic_clip(seq: SequenceData, index: int, length: int, seed: int) -> SequenceData:
    """A clip made from one training frame and its mask moved by a smooth random camera path
    (translation, zoom, rotation, brightness drift): an object whose look hardly changes, the
    regime that the few, mostly deforming training videos lack (STM's static-image clips)."""
    if length < 2:
        raise InputError(f"synthetic clip length must be >= 2, got {length}")
    rng = np.random.default_rng(seed)
    frame, mask = seq.frames[index], seq.masks[index]
    hp, wp = mask.shape
    # a random walk of velocities, integrated: smooth, drifting motion of up to ~a quarter frame
    vel = np.cumsum(rng.normal(0.0, 1.0, size=(length, 4)), axis=0) * np.array([1.2, 1.2, 0.004, 0.4])
    vel[0] = 0.0
    path = np.cumsum(vel, axis=0)
    path[:, 0] = np.clip(path[:, 0], -wp / 4, wp / 4)
    path[:, 1] = np.clip(path[:, 1], -hp / 4, hp / 4)
    path[:, 2] = np.clip(path[:, 2], -0.25, 0.25)
    path[:, 3] = np.clip(path[:, 3], -12.0, 12.0)
    gain = 1.0 + np.clip(np.cumsum(rng.normal(0.0, 0.01, size=length)), -0.15, 0.15)
    frames, masks = [], []
    for (tx, ty, dz, rot), g in zip(path, gain):
        m = cv2.getRotationMatrix2D((wp / 2, hp / 2), float(rot), float(1.0 + dz))
        m[:, 2] += (tx, ty)
        f = cv2.warpAffine(frame, m, (wp, hp), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        frames.append(np.clip(f.astype(np.float32) * g, 0, 255).astype(np.uint8))
        masks.append(cv2.warpAffine(mask, m, (wp, hp), flags=cv2.INTER_NEAREST, borderValue=0))
    name = f"{seq.name}{VIEW_SEP}synth{index}-{seed}"
    return SequenceData(name=name, frames=np.stack(frames), masks=np.stack(masks), proc=seq.proc)


# ------------------------------------------------------------------------------ sprites


@dataclass
class _Sprite:
    """An object's look over time: per-frame (image, mask) in sprite coordinates, anchored at
    the mask's centre of frame 0 and scaled by ``scale``."""

    images: list[np.ndarray]
    masks: list[np.ndarray]
    anchor: tuple[float, float]
    scale: float

    def at(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        return self.images[t % len(self.images)], self.masks[t % len(self.masks)]


def _cutout_sprite(rng, seq: SequenceData, length: int, frame_area: float) -> _Sprite | None:
    """A real object taken frame after frame (forwards or backwards) from a real sequence."""
    n = len(seq)
    step = int(rng.choice([1, 1, 2])) * (1 if rng.random() < 0.5 else -1)
    start = int(rng.integers(n))
    idx = [int(np.clip(start + step * i, 0, n - 1)) for i in range(length)]
    masks = [seq.masks[i] > 0 for i in idx]
    area = masks[0].sum()
    if area < 200:
        return None
    ys, xs = np.nonzero(masks[0])
    scale = float(np.sqrt(rng.uniform(0.02, 0.14) * frame_area / area))
    return _Sprite([seq.frames[i] for i in idx], masks, (float(xs.mean()), float(ys.mean())), min(scale, 1.3))


def _texture_sprite(rng, seq: SequenceData, frame_area: float) -> _Sprite:
    """Real texture (a crop of a real frame) in a random blob."""
    hp, wp = seq.frames.shape[1:3]
    side = np.sqrt(rng.uniform(0.015, 0.10) * frame_area)
    bh = int(np.clip(side * rng.uniform(0.6, 1.6), 16, hp))
    bw = int(np.clip(side * side / bh, 16, wp))
    f = seq.frames[int(rng.integers(len(seq)))]
    y0, x0 = int(rng.integers(hp - bh + 1)), int(rng.integers(wp - bw + 1))
    img = np.ascontiguousarray(f[y0 : y0 + bh, x0 : x0 + bw])
    return _Sprite([img], [_blob(rng, bh, bw)], (bw / 2, bh / 2), 1.0)


# -------------------------------------------------------------------------------- world


class SyntheticWorld:
    """Seeded clips of ``length`` frames at the size of the given real sequences (all of one
    padded size). ``clip(seed)`` is deterministic."""

    def __init__(self, seqs: list[SequenceData], length: int = 12):
        if not seqs:
            raise InputError("SyntheticWorld needs at least one real sequence (frames + masks)")
        sizes = {s.frames.shape[1:3] for s in seqs}
        if len(sizes) != 1:
            raise InputError(f"SyntheticWorld: the sequences must share one frame size, got {sorted(sizes)}")
        if length < 2:
            raise InputError(f"SyntheticWorld: clips need at least 2 frames, got {length}")
        self.seqs, self.length = seqs, length
        self.size: tuple[int, int] = sizes.pop()

    def clip(self, seed: int) -> WorldClip:
        for attempt in range(100):
            clip = self._try(np.random.default_rng([seed, attempt]), seed)
            if clip is not None:
                return clip
        raise RuntimeError(f"SyntheticWorld: no clip with a visible object for seed {seed}")  # pragma: no cover

    def _try(self, rng: np.random.Generator, seed: int) -> WorldClip | None:
        h, w = self.size
        length, area = self.length, float(h * w)
        cams = _camera_paths(rng, length, (h, w))
        bg_seq = self.seqs[int(rng.integers(len(self.seqs)))]
        bg = bg_seq.frames[int(rng.integers(len(bg_seq)))]
        frames = np.stack(
            [cv2.warpPerspective(bg, c, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT) for c in cams]
        )
        n = int(rng.integers(1, MAX_OBJECTS + 1))
        kinds: list[str] = [str(k) for k in rng.choice(KINDS, size=n, p=KIND_P)]
        sprites: list[_Sprite | None] = []
        for k in kinds:
            src = self.seqs[int(rng.integers(len(self.seqs)))]
            sprites.append(
                _cutout_sprite(rng, src, length, area) if k == "cutout"
                else _texture_sprite(rng, src, area) if k == "texture" else None
            )
        keep = [i for i, (k, s) in enumerate(zip(kinds, sprites)) if k == "background" or s is not None]
        kinds, sprites = [kinds[i] for i in keep], [sprites[i] for i in keep]
        copy_of = [-1] * len(kinds)
        if sprites and len(kinds) < MAX_OBJECTS and rng.random() < 0.35:  # a look-alike distractor
            movable = [i for i, s in enumerate(sprites) if s is not None]
            if movable:
                src_i = int(rng.choice(movable))
                kinds.append(kinds[src_i])
                sprites.append(sprites[src_i])
                copy_of.append(src_i)
        if not kinds:
            return None
        shapes = np.zeros((length, len(kinds), h, w), bool)
        layers: list[tuple[int, list[np.ndarray]]] = []
        for o, sprite in enumerate(sprites):
            if sprite is None:  # a piece of the background, fixed in the background's coordinates
                side = np.sqrt(rng.uniform(0.015, 0.10) * area)
                bh = int(np.clip(side * rng.uniform(0.6, 1.6), 16, h))
                bw = int(np.clip(side * side / bh, 16, w))
                base = np.zeros((h, w), np.uint8)
                y0, x0 = int(rng.integers(h - bh + 1)), int(rng.integers(w - bw + 1))
                base[y0 : y0 + bh, x0 : x0 + bw] = _blob(rng, bh, bw)
                for t, c in enumerate(cams):
                    shapes[t, o] = cv2.warpPerspective(base, c, (w, h), flags=cv2.INTER_NEAREST) > 0
                continue
            start = (rng.uniform(0.1, 0.9) * w, rng.uniform(0.1, 0.9) * h)
            motion = _object_motion(rng, length, (h, w), start)
            pixels = []
            for t, m in enumerate(motion):
                img, msk = sprite.at(t)
                s = sprite.scale
                a = np.array([[s, 0.0, -s * sprite.anchor[0]], [0.0, s, -s * sprite.anchor[1]], [0, 0, 1]])
                full = m @ a  # sprite coordinates -> frame
                shapes[t, o] = cv2.warpAffine(msk.astype(np.uint8), full, (w, h), flags=cv2.INTER_NEAREST) > 0
                pixels.append(cv2.warpAffine(img, full, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT))
            layers.append((o, pixels))
        # depth: background pieces at the back, the moving objects in a random order in front
        back = [o for o, k in enumerate(kinds) if sprites[o] is None]
        front = [o for o in rng.permutation(len(kinds)).tolist() if sprites[o] is not None]
        depth = tuple(back + front)
        pix = dict(layers)
        for o in front:
            for t in range(length):
                frames[t][shapes[t, o]] = pix[o][t][shapes[t, o]]
        vis0 = WorldClip(frames, shapes, depth, tuple(kinds), (), tuple(copy_of), seed).visible()[0]
        seen = [o for o in range(len(kinds)) if vis0[o].mean() >= MIN_VISIBLE]
        if not seen:
            return None
        k = min(len(seen), int(rng.choice([1, 2, 3], p=[0.6, 0.25, 0.15])))
        targets = sorted(int(o) for o in rng.choice(seen, size=k, replace=False))
        if any(copy_of[o] in targets for o in targets):  # a look-alike of a target stays a distractor
            targets = [o for o in targets if copy_of[o] not in targets]
        frames = _light_and_blur(rng, frames)
        return WorldClip(frames, shapes, depth, tuple(kinds), tuple(targets), tuple(copy_of), seed)



WORLD_VERSION = 1  # part of the clips' names, so cached features of an older world are not reused
MINING_SEEDS = 100_000  # stage 2 mines clips from this seed on: clips stage 1 never trained on


def world_sequences(
    seqs: list[SequenceData], n: int, length: int = 12, first: int = 0, union: bool = False
) -> list[SequenceData]:
    """Clips ``first``..``first + n - 1`` of the world made of ``seqs``, as training sequences
    (``union``: every marked object as one, for single-object use). Their names carry the world's
    version, the real sequences' names and the seed, so feature caches never mix worlds."""
    import hashlib

    key = hashlib.sha256(",".join(sorted(s.name for s in seqs)).encode()).hexdigest()[:8]
    world = SyntheticWorld(seqs, length)
    out = []
    for i in range(first, first + n):
        seq = world.clip(i).as_sequence(f"world{WORLD_VERSION}-{key}{VIEW_SEP}{i}")
        if union:
            seq.masks = (seq.masks > 0).astype(np.uint8)
        out.append(seq)
    return out


def _light_and_blur(rng: np.random.Generator, frames: np.ndarray) -> np.ndarray:
    """A smooth drift of brightness and tint; some clips get a few blurred frames."""
    length = len(frames)
    gain = 1.0 + _smooth_walk(rng, length, 0.015, 0.3)
    tint = 1.0 + np.stack([_smooth_walk(rng, length, 0.004, 0.08) for _ in range(3)], 1)
    out = np.clip(frames.astype(np.float32) * (gain[:, None] * tint)[:, None, None, :], 0, 255).astype(np.uint8)
    if rng.random() < 0.3:
        for t in rng.choice(length, size=max(1, length // 4), replace=False):
            k = 2 * int(rng.integers(1, 4)) + 1
            out[t] = cv2.GaussianBlur(out[t], (k, k), 0)
    return out
