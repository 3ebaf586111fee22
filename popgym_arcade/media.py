"""Write frames to image files: PNG with no dependency, GIF with Pillow (the ``media`` extra)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from popgym_arcade._extras import install_hint


def write_png(path: str | Path, image: Any) -> Path:
    """Write a ``uint8[H, W, 3]`` RGB image as a PNG file (no third-party dependency)."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected a uint8[H, W, 3] image, got {image.dtype}{list(image.shape)}")
    height, width, _ = image.shape
    # Each scanline starts with filter type 0 (none).
    raw = np.concatenate([np.zeros((height, 1), np.uint8), image.reshape(height, width * 3)], axis=1)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    payload = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw.tobytes(), 6))
    payload += chunk(b"IEND", b"")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(payload)
    return path


def write_gif(path: str | Path, frames: Any, fps: float = 4.0) -> Path:
    """Write ``uint8[T, H, W, 3]`` frames as a looping GIF. Needs Pillow (the ``media`` extra)."""
    try:
        from PIL import Image
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(f"writing GIFs needs Pillow: {install_hint('media')}") from error
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected uint8[T, H, W, 3] frames, got shape {frames.shape}")
    images = [Image.fromarray(frame) for frame in frames]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
    return path


def side_by_side(left: Any, right: Any, gap: int = 4, gap_color: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
    """Join two equally shaped ``[..., H, W, 3]`` frame arrays horizontally with a gap between."""
    left, right = np.asarray(left), np.asarray(right)
    if left.shape != right.shape:
        raise ValueError(f"frames differ in shape: {left.shape} vs {right.shape}")
    spacer = np.empty(left.shape[:-2] + (gap, 3), np.uint8)
    spacer[...] = gap_color
    return np.concatenate([left, spacer, right], axis=-2)


def filmstrip(rows: list[Any], gap: int = 4, gap_color: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
    """One image from rows of frames: ``rows[i]`` is ``uint8[T, H, W, 3]``, shown left to right."""
    lines = []
    for frames in rows:
        frames = np.asarray(frames)
        spacer = np.empty((frames.shape[1], gap, 3), np.uint8)
        spacer[...] = gap_color
        pieces: list[np.ndarray] = []
        for i, frame in enumerate(frames):
            pieces.extend([spacer, frame] if i else [frame])
        lines.append(np.concatenate(pieces, axis=1))
    width = lines[0].shape[1]
    spacer_row = np.empty((gap, width, 3), np.uint8)
    spacer_row[...] = gap_color
    out: list[np.ndarray] = []
    for i, line in enumerate(lines):
        out.extend([spacer_row, line] if i else [line])
    return np.concatenate(out, axis=0)
