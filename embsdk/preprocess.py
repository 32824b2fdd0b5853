"""Image preprocessing, defined once: the trainer, the exporter and the client all call this.

Only PIL and numpy (no torch), so the SDK can prepare images for Triton or ONNX Runtime. The trainer
wraps the same :class:`InputSpec` for its evaluation transform; training-time augmentation adds random
crops/flips in front of the same normalization.

Pipeline (eval): decode → RGB → resize the short side to ``resize_size`` (bicubic) → center crop
``image_size`` → scale to [0, 1] → ``(x - mean) / std`` → float32 CHW.
The EfficientNet-Lite backbones use TensorFlow scaling: mean = 127/255, std = 128/255.

Decoding (:func:`open_image`, the one decoder of the SDK, backfill, trainer and ``emb data validate``) is
bounded: an image whose decode would exceed :data:`MAX_DECODE_PIXELS` is refused from its header, before
any pixel is decoded (decompression bombs), and a JPEG at least ``2 × DECODE_MARGIN`` times larger than
the resize target on both sides is decoded at 1/2, 1/4 or 1/8 scale by libjpeg (``Image.draft``), keeping
both sides ≥ ``DECODE_MARGIN × resize_size``. Images below that size (every Grocery image) decode exactly
as before; a reduced one differs from a full decode by DCT-scaling rounding only.
"""

from __future__ import annotations

import io
import threading
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embsdk.errors import ImageDecodeError

__all__ = [
    "DECODE_MARGIN",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "MAX_DECODE_PIXELS",
    "TF_MEAN",
    "TF_STD",
    "TOO_LARGE",
    "InputSpec",
    "decode_side",
    "load_image",
    "load_images",
    "open_image",
    "preprocess_image",
]

TF_MEAN: tuple[float, float, float] = (127 / 255,) * 3
TF_STD: tuple[float, float, float] = (128 / 255,) * 3
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

MAX_DECODE_PIXELS = 64_000_000
"""The most pixels embsdk decodes for one image (after any JPEG reduction): about 192 MB as RGB.

Larger images are refused with :class:`ImageDecodeError` from the header size, before decoding, whatever
PIL's own ``Image.MAX_IMAGE_PIXELS`` says (when PIL's guard refuses first, that is an ImageDecodeError too).
"""

TOO_LARGE = "image too large to decode"
"""How :class:`ImageDecodeError` reasons for refused (too-large) images begin."""

DECODE_MARGIN = 2
"""A reduced JPEG decode keeps both sides ≥ DECODE_MARGIN × the resize target (the resize still downsamples)."""


@dataclass(frozen=True)
class InputSpec:
    """What a model expects as input; recorded in each generation's registry entry."""

    image_size: int = 224
    resize_size: int | None = None  # default: image_size / 0.875
    mean: tuple[float, float, float] = field(default=TF_MEAN)
    std: tuple[float, float, float] = field(default=TF_STD)
    interpolation: str = "bicubic"
    layout: str = "NCHW"
    dtype: str = "float32"

    @property
    def resize_to(self) -> int:
        return self.resize_size or int(self.image_size / 0.875)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["mean"], d["std"], d["resize_size"] = list(self.mean), list(self.std), self.resize_to
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> InputSpec:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        for key in ("mean", "std"):
            if key in known:
                known[key] = tuple(float(v) for v in known[key])
        return cls(**known)


_RESAMPLE = {"bicubic": 3, "bilinear": 2, "nearest": 0}  # PIL.Image.Resampling values


_OPEN_LOCK = threading.Lock()  # warnings.catch_warnings is process-wide: one opener at a time


def decode_side(spec: InputSpec) -> int:
    """The smallest side a reduced decode keeps for *spec*: ``DECODE_MARGIN × spec.resize_to``."""
    return DECODE_MARGIN * spec.resize_to


def _open_header(source: str | Path | bytes) -> Any:
    """``Image.open`` (reads the header only), without PIL's bomb *warning*: embsdk applies its own limit."""
    from PIL import Image

    with _OPEN_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)


def _reduce(img: Any, min_side: int | None) -> None:
    """Ask libjpeg for a 1/2, 1/4 or 1/8 scale decode that keeps both sides ≥ *min_side* (JPEG only)."""
    if min_side is None or img.format not in ("JPEG", "MPO"):  # MPO: phone cameras' multi-picture JPEG
        return
    w, h = img.size
    if min(w // min_side, h // min_side) >= 2:
        img.draft(None, (min_side, min_side))


def open_image(source: str | Path | bytes, *, min_side: int | None = None) -> Any:
    """Decode one image → a loaded PIL RGB image; the one decoder every embsdk and trainer path uses.

    Args:
        source: an image file or its encoded bytes.
        min_side: the smallest side the caller needs (see :func:`decode_side`); a JPEG at least twice
            that on both sides is decoded reduced. None decodes at full resolution.

    Raises:
        ImageDecodeError: the file is missing, truncated, not an image, or has more than
            :data:`MAX_DECODE_PIXELS` pixels to decode (checked before decoding).
    """
    from PIL import Image, UnidentifiedImageError

    name = "<bytes>" if isinstance(source, bytes) else str(source)
    try:
        img = _open_header(source)
    except FileNotFoundError:
        raise ImageDecodeError(name, "file not found") from None
    except Image.DecompressionBombError as exc:
        raise ImageDecodeError(name, f"{TOO_LARGE} ({exc})") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ImageDecodeError(name, f"not a readable image ({exc})") from None
    try:
        _reduce(img, min_side)
        _check_pixels(img, name)
        img.load()  # force the full decode now: truncated files fail here, not later
        rgb = img if img.mode == "RGB" else img.convert("RGB")
    except ImageDecodeError:
        img.close()
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        img.close()
        raise ImageDecodeError(name, f"not a readable image ({exc})") from None
    if rgb is not img:
        img.close()
    return rgb


def _check_pixels(img: Any, name: str) -> None:
    w, h = img.size
    if w * h > MAX_DECODE_PIXELS:
        raise ImageDecodeError(
            name,
            f"{TOO_LARGE}: {w}x{h} = {w * h:,} pixels "
            f"(limit {MAX_DECODE_PIXELS:,}; a possible decompression bomb)",
        )


def preprocess_image(img: Any, spec: InputSpec) -> np.ndarray:
    """Resize, center-crop and normalize one PIL RGB image → float32 array (3, S, S)."""
    w, h = img.size
    short = spec.resize_to
    scale = short / min(w, h)
    nw, nh = max(short, round(w * scale)), max(short, round(h * scale))
    img = img.resize((nw, nh), resample=_RESAMPLE[spec.interpolation])
    s = spec.image_size
    left, top = round((nw - s) / 2.0), round((nh - s) / 2.0)
    img = img.crop((left, top, left + s, top + s))
    x = np.asarray(img, dtype=np.float32) / 255.0
    x = (x - np.asarray(spec.mean, np.float32)) / np.asarray(spec.std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def load_image(source: str | Path | bytes, spec: InputSpec) -> np.ndarray:
    """Decode an image file (or bytes) and preprocess it → float32 (3, S, S).

    Raises:
        ImageDecodeError: the file is missing, truncated, not an image or too large (:func:`open_image`).
    """
    return preprocess_image(open_image(source, min_side=decode_side(spec)), spec)


def load_images(sources: Sequence[str | Path | bytes | np.ndarray], spec: InputSpec) -> np.ndarray:
    """Preprocess a batch → float32 (N, 3, S, S). Arrays are taken as already preprocessed CHW (or HWC uint8)."""
    out = []
    for src in sources:
        if isinstance(src, np.ndarray):
            out.append(_array_to_chw(src, spec))
        else:
            out.append(load_image(src, spec))
    return np.stack(out) if out else np.zeros((0, 3, spec.image_size, spec.image_size), np.float32)


def _array_to_chw(arr: np.ndarray, spec: InputSpec) -> np.ndarray:
    s = spec.image_size
    if arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[-1] == 3:  # raw HWC pixels
        from PIL import Image

        return preprocess_image(Image.fromarray(arr), spec)
    if arr.shape == (3, s, s):
        return arr.astype(np.float32, copy=False)
    raise ImageDecodeError(
        "<array>",
        f"expected uint8 HxWx3 pixels or a preprocessed float (3, {s}, {s}) array, got {arr.dtype} {arr.shape}",
    )
