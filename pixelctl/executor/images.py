"""Decoding, RGB conversion, bounded resizing and a process-wide cache of prepared inputs.

Why a cache: the 8 rollouts of a GRPO group crop the same input image, and the reference decodes
and resizes it for each. Here a prepared input (decoded, RGB, resized to the image bounds) is
kept in a bounded LRU keyed by file identity and bounds, so a group pays for one decode.
Why draft decoding: when the input must shrink by 2x or more (4K inputs at training bounds),
libjpeg can decode at 1/2, 1/4 or 1/8 scale directly, which is several times cheaper. The result
differs from a full decode by a small, tested amount (docs/executor.md); `fast_decode=False`
gives bit-exact reference pixels.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Executor, Future
from pathlib import Path

from PIL import Image

from pixelctl.executor.geometry import smart_resize
from pixelctl.models.qwen import FACTOR

ImageSource = str | os.PathLike | Image.Image


class ImageLoadError(Exception):
    """An input image that cannot be used (missing, outside the data root, corrupt, too big)."""


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB, with RGBA composited on white (reference `to_rgb`); RGB images are returned as is."""
    if image.mode == "RGB":
        return image  # convert("RGB") would only copy; images here are never mutated
    if image.mode == "RGBA":
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image, mask=image.split()[3])
        return background
    return image.convert("RGB")


def fit(image: Image.Image, min_pixels: int, max_pixels: int) -> Image.Image:
    """RGB and resized with `smart_resize` (bicubic, Pillow's default), as qwen-vl-utils does."""
    image = to_rgb(image)
    width, height = image.size
    new_h, new_w = smart_resize(height, width, FACTOR, min_pixels, max_pixels)
    if not min_pixels <= new_w * new_h <= max_pixels:
        # qwen-vl-utils can overshoot when the bounds are narrow or the shape extreme; never
        # hand the model an image outside the configured bounds.
        raise ValueError(
            f"a {width}x{height} image cannot be resized to {min_pixels}..{max_pixels} pixels"
        )
    if (new_w, new_h) == (width, height):
        return image
    return image.resize((new_w, new_h), Image.Resampling.BICUBIC)


def resolve(source: str | os.PathLike, data_root: Path | None) -> Path:
    """The real path of an input, refusing paths that leave `data_root` (symlinks included)."""
    path = Path(source)
    if data_root is not None and not path.is_absolute():
        path = data_root / path
    real = Path(os.path.realpath(path))
    if data_root is not None:
        root = Path(os.path.realpath(data_root))
        if real != root and root not in real.parents:
            raise ImageLoadError(f"{source} is outside the data root {root}")
    if not real.is_file():
        raise ImageLoadError(f"{source} does not exist or is not a file")
    return real


def _check_size(width: int, height: int, cap: int, what: str) -> None:
    if width <= 0 or height <= 0:
        raise ImageLoadError(f"{what} has an empty size {width}x{height}")
    if width * height > cap:
        raise ImageLoadError(
            f"{what} is {width}x{height} = {width * height} px, over the cap of {cap} px "
            "(max_input_pixels)"
        )


def decode_fitted(
    path: Path, min_pixels: int, max_pixels: int, cap: int, fast: bool
) -> Image.Image:
    """Decode `path` once and fit it to the bounds, decoding JPEGs at reduced scale when allowed."""
    try:
        im = Image.open(path)
    except Exception as exc:  # Pillow raises many types for malformed headers
        raise ImageLoadError(f"{path} could not be opened as an image ({exc})") from exc
    try:
        width, height = im.size
        _check_size(width, height, cap, str(path))
        new_h, new_w = smart_resize(height, width, FACTOR, min_pixels, max_pixels)
        box = None
        if fast and im.format == "JPEG" and width >= 2 * new_w and height >= 2 * new_h:
            drafted = im.draft("RGB", (new_w, new_h))
            box = drafted[1] if drafted else None
        im.load()  # also closes the file Pillow opened
        image = to_rgb(im)
        if image.size == (new_w, new_h) and box is None:
            return image
        return image.resize((new_w, new_h), Image.Resampling.BICUBIC, box=box)
    except ImageLoadError:
        im.close()
        raise
    except Exception as exc:  # truncated data, bad codecs, absurd sizes: never crash a rollout
        im.close()
        raise ImageLoadError(f"{path} could not be decoded ({exc})") from exc


class ImageCache:
    """A thread-safe LRU of prepared images, bounded by total bytes, with single-flight misses.

    The in-flight table matters: the 8 rollouts of a group start together, and without it they
    would all miss and decode the same file at once.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple, Image.Image] = OrderedDict()
        self._bytes = 0
        self._pending: dict[tuple, Future] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def _size(image: Image.Image) -> int:
        return image.width * image.height * len(image.getbands())

    def _claim(self, key: tuple) -> tuple[Future, bool]:
        """A future for `key` and whether the caller must produce it (first miss)."""
        with self._lock:
            image = self._items.get(key)
            if image is not None:
                self._items.move_to_end(key)
                self.hits += 1
                done: Future = Future()
                done.set_result(image)
                return done, False
            if key in self._pending:
                self.hits += 1
                return self._pending[key], False
            self.misses += 1
            future = self._pending[key] = Future()
            return future, True

    def _produce(self, key: tuple, future: Future, make: Callable[[], Image.Image]) -> None:
        try:
            image = make()
        except BaseException as exc:
            with self._lock:
                self._pending.pop(key, None)
            future.set_exception(exc)
            return
        self.put(key, image)
        with self._lock:
            self._pending.pop(key, None)
        future.set_result(image)

    def get_or_make(self, key: tuple, make: Callable[[], Image.Image]) -> Image.Image:
        """The cached image, or `make()` run once however many threads ask at the same time."""
        future, owner = self._claim(key)
        if owner:
            self._produce(key, future, make)
        return future.result()

    def submit(self, key: tuple, make: Callable[[], Image.Image], pool: Executor) -> Future:
        """Like `get_or_make` but returns a future, so asyncio callers wait without a thread."""
        future, owner = self._claim(key)
        if owner:
            pool.submit(self._produce, key, future, make)
        return future

    def get(self, key: tuple) -> Image.Image | None:
        with self._lock:
            image = self._items.get(key)
            if image is not None:
                self._items.move_to_end(key)
            return image

    def put(self, key: tuple, image: Image.Image) -> None:
        size = self._size(image)
        if size > self.max_bytes:
            return
        with self._lock:
            if key in self._items:
                return
            self._items[key] = image
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, old = self._items.popitem(last=False)
                self._bytes -= self._size(old)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0
            self.hits = self.misses = 0


_CACHE = ImageCache(int(os.environ.get("PIXELCTL_IMAGE_CACHE_MB", "256")) * 1024 * 1024)


def image_cache() -> ImageCache:
    """The process-wide cache of prepared inputs (size: env PIXELCTL_IMAGE_CACHE_MB, default 256)."""
    return _CACHE


def preparation(
    source: ImageSource,
    min_pixels: int,
    max_pixels: int,
    *,
    cap: int,
    data_root: Path | None,
    fast: bool,
) -> tuple[tuple | None, Callable[[], Image.Image]]:
    """(cache key or None, function producing the prepared input); path checks happen here."""
    if isinstance(source, Image.Image):

        def from_memory() -> Image.Image:
            _check_size(source.width, source.height, cap, "the input image")
            try:
                return fit(source, min_pixels, max_pixels)
            except (OSError, ValueError) as exc:
                raise ImageLoadError(f"the input image could not be used ({exc})") from exc

        return None, from_memory
    path = resolve(source, data_root)
    stat = path.stat()
    key = (str(path), stat.st_mtime_ns, stat.st_size, min_pixels, max_pixels, fast)
    return key, lambda: decode_fitted(path, min_pixels, max_pixels, cap, fast)


def prepare(
    source: ImageSource,
    min_pixels: int,
    max_pixels: int,
    *,
    cap: int,
    data_root: Path | None,
    fast: bool,
    cache: ImageCache | None = None,
) -> Image.Image:
    """An input image as the model sees it: decoded, RGB, resized to the bounds (cached by file)."""
    key, make = preparation(source, min_pixels, max_pixels, cap=cap, data_root=data_root, fast=fast)
    if key is None:
        return make()
    return (_CACHE if cache is None else cache).get_or_make(key, make)
