"""Frame loading: the frames screen messages reference, decoded lazily when rows are read.

Every frame asked for in one call (a row's, or a DataLoader batch of rows) is decoded together. With the
default ``decoder="pyav"`` each video's wanted frames are decoded in pts order in one pass per GOP segment:
seek to the keyframe before the earliest wanted frame, decode forward through the latest one of that
stretch, seek again only when the next wanted frame's keyframe lies ahead (a seek never decodes more than
going on would). Frames are bit-exact with a plain PyAV decode (rgb24) of the same pts.
``decoder="tensorcodec"`` or ``"torchcodec"`` hands the frames to mediaref's batch decoding instead.

Each loader keeps, per process, a cache (never pickled; open decoders are closed before a fork, and a
forked DataLoader worker starts its own):
up to `MAX_OPEN_VIDEOS` open decoders with their index of frame and keyframe times, least recently
used closed first, and the most recently delivered frames up to `frame_cache_bytes` bytes of pixels.

`image_size=(width, height)` resizes each frame to the model's input in the worker: swscale's area
averaging on the decoded YUV frame, then the RGB conversion at the small size (faster than converting
the full frame); other backends' RGB frames are resized with the
same filter in RGB, so their resized pixels may differ from PyAV's in the last bit.

A frame that cannot be had (video missing, unreadable, or shorter than the frame's pts) is an error
naming the video and pts, unless ``missing_media="placeholder"``: then it is a black frame of the
message's shape (or `image_size`), logged, and reported in `LoadedFrames.placeholders`.
"""

from __future__ import annotations

import bisect
import importlib.util
import logging
import os
import weakref
from collections import Counter, OrderedDict, defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Literal, NamedTuple

import av
import numpy as np
from av.video.reformatter import VideoReformatter
from mediaref import MediaRef, batch_decode

from ..units import NS_PER_S
from .roots import MediaRoot

logger = logging.getLogger("owa_builders")

MissingMedia = Literal["error", "placeholder"]
Decoder = Literal["pyav", "tensorcodec", "torchcodec"]
DECODERS: tuple[Decoder, ...] = ("pyav", "tensorcodec", "torchcodec")
MAX_OPEN_VIDEOS = 8  # open decoders per loader and process (each holds a few reference frames)
DEFAULT_FRAME_CACHE_BYTES = 256 << 20  # delivered frames kept per loader and process: 40 RGB 1080p frames
RESIZE_INTERPOLATION = "AREA"  # swscale's area averaging: the right filter for shrinking screen captures


class MissingFrameError(LookupError):
    """A referenced frame that cannot be decoded: its video is missing or unreadable, or ends before its pts."""

    def __init__(self, message: str, *, media: str | None = None, pts_ns: int | None = None):
        super().__init__(message)
        self.media = media
        self.pts_ns = pts_ns


class FrameRequest(NamedTuple):
    """One screen message whose frame is wanted, with the episode it was recorded in."""

    episode_path: str  # relative to the recordings' root
    screen: Mapping  # the decoded desktop/ScreenCaptured message
    row: str = ""  # the dataset row asking, as errors name it (e.g. "episode x.mcap, row with bin_idx=3")


class LoadedFrames(NamedTuple):
    frames: list[np.ndarray]  # RGB (height, width, 3) uint8, in request order
    placeholders: list[int]  # positions of the requests that got a black placeholder


class _Unavailable(Exception):
    """Why one wanted frame cannot be had (turned into a MissingFrameError or a placeholder)."""


@dataclass(frozen=True)
class FrameLoader:
    """Decodes the frames of screen messages, resolving their media against `root`."""

    root: MediaRoot
    missing_media: MissingMedia = "error"
    decoder: Decoder = "pyav"
    image_size: tuple[int, int] | None = None  # (width, height) to resize every frame to; None: as recorded
    frame_cache_bytes: int = DEFAULT_FRAME_CACHE_BYTES
    _cache: _Cache | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self):
        if self.missing_media not in ("error", "placeholder"):
            raise ValueError(f"missing_media must be 'error' or 'placeholder', not {self.missing_media!r}")
        if self.decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {', '.join(map(repr, DECODERS))}, not {self.decoder!r}")
        if self.decoder == "torchcodec":
            check_torchcodec()
        if self.image_size is not None:
            width, height = self.image_size
            if not (isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0):
                raise ValueError(f"image_size must be (width, height) in positive pixels, not {self.image_size!r}")
            object.__setattr__(self, "image_size", (width, height))
        if self.frame_cache_bytes < 0:
            raise ValueError(f"frame_cache_bytes must be >= 0, not {self.frame_cache_bytes}")

    def __getstate__(self) -> dict:  # open decoders stay in the process that opened them
        return {name: value for name, value in self.__dict__.items() if name != "_cache"}

    @property
    def cache(self) -> _Cache:
        """This process's decoders and recent frames (a new one in a forked or unpickled copy)."""
        if self._cache is None or self._cache.pid != os.getpid():
            object.__setattr__(self, "_cache", _Cache(self.frame_cache_bytes))
        return self._cache

    @property
    def counts(self) -> Counter:
        """In this process: frames ``delivered``, taken ``from_cache``, ``decoded`` (PyAV; seeks in ``seeks``)."""
        return self.cache.counts

    def load(self, requests: Sequence[FrameRequest]) -> LoadedFrames:
        located: dict[tuple[str, str], str] = {}  # (episode, uri) -> media: a row's frames share a video
        refs = [self._media_ref(request, located) for request in requests]
        frames: list[np.ndarray | None] = [None] * len(refs)
        problems: dict[int, str] = {}
        by_media: dict[str, list[int]] = defaultdict(list)
        for i, ref in enumerate(refs):
            if isinstance(ref, _Unavailable):
                problems[i] = str(ref)
            elif _is_missing_file(ref):
                problems[i] = "video file not found"
            else:
                by_media[ref.uri].append(i)
        for media, indices in by_media.items():
            for i, frame in zip(indices, self._frames(media, [refs[i].pts_ns for i in indices]), strict=True):
                if isinstance(frame, _Unavailable):
                    problems[i] = str(frame)
                else:
                    frames[i] = frame
        if problems:
            first = min(problems)
            uri, pts_ns = (None, None) if isinstance(refs[first], _Unavailable) else (refs[first].uri, refs[first].pts_ns)
            frame = f"{uri}: no frame at pts_ns={pts_ns} ({problems[first]})" if uri else problems[first]
            asking = requests[first].row or f"episode {requests[first].episode_path}"
            if self.missing_media == "error":
                others = f" (and {len(problems) - 1} more frames of this batch)" if len(problems) > 1 else ""
                raise MissingFrameError(f"{frame}, referenced in {asking}{others}; pass missing_media='placeholder' "
                                        "for black frames", media=uri, pts_ns=pts_ns)
            logger.warning("%d frame(s) replaced by black placeholders, the first: %s, referenced in %s",
                           len(problems), frame, asking)
            for i in problems:
                frames[i] = self._placeholder(requests[i].screen)
        self.cache.counts["delivered"] += len(frames)
        return LoadedFrames(frames, sorted(problems))

    def _media_ref(self, request: FrameRequest, located: dict[tuple[str, str], str]) -> MediaRef | _Unavailable:
        """Where the request's frame is; _Unavailable for a screen message without a usable media_ref."""
        media = request.screen.get("media_ref") if isinstance(request.screen, Mapping) else None
        uri, pts_ns = (media.get("uri"), media.get("pts_ns")) if isinstance(media, Mapping) else (None, None)
        if not isinstance(uri, str) or not (pts_ns is None or (isinstance(pts_ns, int) and not isinstance(pts_ns, bool))):
            return _Unavailable(f"malformed image reference {request.screen!r:.200}: it needs media_ref.uri (a string) "
                                "and media_ref.pts_ns (an integer, or none for an image)")
        key = (request.episode_path, uri)
        if key not in located:
            located[key] = self.root.locate(*key)
        return MediaRef(uri=located[key], pts_ns=pts_ns)

    def _frames(self, media: str, times_ns: list[int | None]) -> list[np.ndarray | _Unavailable]:
        """The frames of one media at `times_ns` (None: an image), from the cache or decoded."""
        cache = self.cache
        out: list[np.ndarray | _Unavailable | None] = [cache.frame((media, t, self.image_size)) for t in times_ns]
        wanted = sorted({t for t, frame in zip(times_ns, out) if frame is None})
        if not wanted:
            return out
        if wanted[0] is None or self.decoder != "pyav":
            decoded = self._decode_with_mediaref(media, wanted)
        else:
            decoded = cache.video(media).frames_at(wanted, self.image_size)
        for t, frame in decoded.items():
            if not isinstance(frame, _Unavailable):
                cache.keep((media, t, self.image_size), frame)
        return [decoded[t] if frame is None else frame for t, frame in zip(times_ns, out)]

    def _decode_with_mediaref(self, media: str, wanted: list[int | None]) -> dict:
        """mediaref's batch decoding (images, and the tensorcodec / torchcodec backends); one frame at a
        time when the batch fails, to tell which frames cannot be had."""
        def decode(times):
            frames = batch_decode([MediaRef(uri=media, pts_ns=t) for t in times], decoder=self.decoder,
                                  allow_images=True)
            return dict(zip(times, (self._resized(frame) for frame in frames), strict=True))
        try:
            return decode(wanted)
        except ValueError:
            found = {}
            for t in wanted:
                try:
                    found |= decode([t])
                except ValueError as error:
                    found[t] = _Unavailable(str(error.__cause__ or error))
            return found

    def _resized(self, rgb: np.ndarray) -> np.ndarray:
        if self.image_size is None or rgb.shape[1::-1] == self.image_size:
            return rgb
        return _RgbConverter()(av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb[..., :3]), format="rgb24"),
                               self.image_size)

    def _placeholder(self, screen: Mapping) -> np.ndarray:
        shapes = [self.image_size] + ([screen.get("shape"), screen.get("source_shape")] if isinstance(screen, Mapping) else [])
        width, height = next((shape for shape in shapes if _is_size(shape)), (1, 1))
        return np.zeros((height, width, 3), np.uint8)


def check_torchcodec() -> None:
    """Raises ImportError saying why the torchcodec backend cannot run here."""
    if importlib.util.find_spec("torchcodec") is None:
        raise ImportError("decoder='torchcodec' needs torchcodec (pip install torchcodec, the release matching "
                          "your torch, and FFmpeg's shared libraries); decoder='pyav' needs nothing more")
    try:
        import torchcodec.decoders  # noqa: F401  (loads its native libraries: torch's and FFmpeg's)
    except (ImportError, OSError, RuntimeError) as error:
        raise ImportError(f"decoder='torchcodec': torchcodec is installed but cannot load ({error}); it needs the "
                          f"build matching your torch and FFmpeg's shared libraries; decoder='pyav' works") from error


class _Cache:
    """One loader's open videos and recently delivered frames, in one process."""

    def __init__(self, frame_bytes: int):
        self.pid = os.getpid()
        self.frame_bytes = frame_bytes
        self.counts: Counter = Counter()
        self._videos: OrderedDict[str, _Video] = OrderedDict()
        self._frames: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._frames_size = 0
        _CACHES.add(self)

    def close_videos(self) -> None:
        while self._videos:
            self._videos.popitem()[1].close()

    def video(self, media: str) -> _Video:
        video = self._videos.pop(media, None) or _Video(media, self.counts)
        self._videos[media] = video  # most recently used last
        while len(self._videos) > MAX_OPEN_VIDEOS:
            self._videos.popitem(last=False)[1].close()
        return video

    def frame(self, key: tuple) -> np.ndarray | None:
        frame = self._frames.get(key)
        if frame is not None:
            self._frames.move_to_end(key)
            self.counts["from_cache"] += 1
        return frame

    def keep(self, key: tuple, frame: np.ndarray) -> None:
        if frame.nbytes > self.frame_bytes:
            return
        frame.flags.writeable = False  # handed out again: an in-place edit would change later rows' frames
        self._frames[key] = frame
        self._frames_size += frame.nbytes
        while self._frames_size > self.frame_bytes:
            self._frames_size -= self._frames.popitem(last=False)[1].nbytes

    @property
    def frames_size(self) -> int:
        """Bytes of pixels held (never more than the bound)."""
        return self._frames_size


_CACHES: weakref.WeakSet[_Cache] = weakref.WeakSet()


def _close_videos_before_fork() -> None:
    """A forked process (a DataLoader worker) must not inherit open decoders: freeing them there hangs."""
    for cache in list(_CACHES):
        cache.close_videos()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_close_videos_before_fork)


class _Video:
    """An open video: its frame times and keyframes (read once from its packets) and a decoder that goes on
    from where the last call stopped."""

    def __init__(self, media: str, counts: Counter):
        self.media, self.counts = media, counts
        self.error: str | None = None
        self._container = None
        try:
            self._container = av.open(media)
            self._stream = self._container.streams.video[0]
            self._stream.codec_context.thread_count = 1  # one core per DataLoader worker
            self._index()
        except (av.FFmpegError, IndexError, OSError) as error:
            self.error = f"cannot read the video: {error}"
            self.close()
        self._decoding: Iterator[av.VideoFrame] | None = None
        self._position: int | None = None  # pts of the frame the decoder gave last
        self._rgb = _RgbConverter()

    def _index(self) -> None:
        packets = sorted((packet.pts, packet.is_keyframe, packet.duration or 0)
                         for packet in self._container.demux(self._stream) if packet.pts is not None)
        if not packets:
            raise IndexError("no video frames")
        self._pts = [pts for pts, _, _ in packets]  # in the stream's time base, ascending
        self._keyframes = [pts for pts, key, _ in packets if key]
        last_pts, _, last_duration = packets[-1]
        self._time_base = Fraction(self._stream.time_base)
        self._end_pts = last_pts + max(last_duration, 1)
        self._container.seek(self._keyframes[0], stream=self._stream, backward=True)

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None

    def frames_at(self, times_ns: list[int], image_size: tuple[int, int] | None) -> dict:
        """The frame shown at each of `times_ns` (ascending): RGB arrays, or _Unavailable saying why."""
        if self.error is not None:
            return {t: _Unavailable(self.error) for t in times_ns}
        shown = {t: self._shown_at(t) for t in times_ns}
        out = {t: pts for t, pts in shown.items() if isinstance(pts, _Unavailable)}
        try:
            for pts in sorted({pts for pts in shown.values() if not isinstance(pts, _Unavailable)}):
                rgb = self._rgb(self._decode_through(pts), image_size)
                out |= {t: rgb for t, shown_pts in shown.items() if shown_pts == pts}
        except (av.FFmpegError, LookupError) as error:  # a damaged stream: what is not decoded yet is lost
            self._decoding = self._position = None
            out |= {t: _Unavailable(f"decoding failed: {error}") for t in times_ns if t not in out}
        return out

    def _shown_at(self, time_ns: int) -> int | _Unavailable:
        """The pts of the frame on screen at `time_ns`: the last frame starting at or before it."""
        position = Fraction(time_ns, NS_PER_S) / self._time_base
        index = bisect.bisect_right(self._pts, position) - 1
        if index < 0 or position >= self._end_pts:
            span = [round(pts * self._time_base * NS_PER_S) for pts in (self._pts[0], self._end_pts)]
            return _Unavailable(f"pts is outside the stream, whose frames span [{span[0]}, {span[1]}) ns")
        return self._pts[index]

    def _decode_through(self, pts: int) -> av.VideoFrame:
        """Decode up to the frame at `pts`, going on from the last one unless its keyframe lies ahead."""
        keyframe = self._keyframes[bisect.bisect_right(self._keyframes, pts) - 1]
        if self._decoding is None or self._position is None or not keyframe <= self._position < pts:
            self._container.seek(keyframe, stream=self._stream, backward=True)
            self._decoding = self._container.decode(self._stream)
            self.counts["seeks"] += 1
        for frame in self._decoding:
            self.counts["decoded"] += 1
            self._position = frame.pts
            if frame.pts == pts:
                return frame
            if frame.pts > pts:
                break
        self._decoding = self._position = None
        raise LookupError(f"no decoded frame has pts {pts} (the index has it)")


class _RgbConverter:
    """Frames to RGB arrays, shrunk to an image size first if given, reusing swscale's contexts between
    frames (a new context per frame costs as much as the conversion itself)."""

    def __init__(self):
        self._resize, self._to_rgb = VideoReformatter(), VideoReformatter()

    def __call__(self, frame: av.VideoFrame, image_size: tuple[int, int] | None) -> np.ndarray:
        if image_size is not None:
            width, height = image_size
            frame = self._resize.reformat(frame, width=width, height=height, interpolation=RESIZE_INTERPOLATION)
        return self._to_rgb.reformat(frame, format="rgb24").to_ndarray()


def _is_size(shape: object) -> bool:
    """A (width, height) of positive ints."""
    return isinstance(shape, (list, tuple)) and len(shape) == 2 and all(
        isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in shape)


def _is_missing_file(ref: MediaRef) -> bool:
    """A local video that is not there (URLs and embedded images are left to the decoder)."""
    return os.path.isabs(ref.uri) and not os.path.isfile(ref.uri)
