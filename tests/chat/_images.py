"""What the image tests share: real images made here (PNG by hand, so no imaging library
is needed), and a Hearth in front of the fake OpenAI-compatible upstream with one model
that reads images, one that says nothing, and one configured not to."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

from hearth.config import ModelConfig, OpenAIEngineConfig, Settings

VISION, UNKNOWN, BLIND = "fake-vision", "fake-text", "fake-blind"
MAX_IMAGE_BYTES = 64 * 1024


def png(width: int = 8, height: int = 8, rgb: tuple[int, int, int] = (200, 60, 20)) -> bytes:
    """A real PNG of one colour (8-bit RGB), which browsers draw."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + bytes(rgb) * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


def gif() -> bytes:
    """The smallest GIF: one transparent pixel."""
    return (
        b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00"
        b"\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
    )


def vision_settings(database_url: str, data_dir: Path, base_url: str) -> Settings:
    """A Hearth whose models are the fake upstream's `stream` behaviour under three names."""
    return Settings(
        database_url=database_url,
        data_dir=data_dir,
        chat_image_max_bytes=MAX_IMAGE_BYTES,
        engines=[
            OpenAIEngineConfig(
                name="gpu",
                base_url=base_url,
                models=[
                    ModelConfig(name=VISION, upstream="stream", vision=True),
                    ModelConfig(name=UNKNOWN, upstream="stream"),
                    ModelConfig(name=BLIND, upstream="stream", vision=False),
                ],
            )
        ],
        default_model=VISION,
    )
