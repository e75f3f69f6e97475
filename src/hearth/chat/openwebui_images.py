"""The images of a message in Open WebUI's export: its `files` entries of type `image`,
whose `url` is a `data:` URL when the image is in the file itself (newer versions may
link to their own file store instead, which the file does not hold)."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from hearth.chat.images import image_type
from hearth.chat.schemas import MAX_IMAGES_PER_MESSAGE, ExportedImage


def taken_images(
    role: str | None, files: list[Any], max_bytes: int
) -> tuple[list[ExportedImage], list[Any], set[str]]:
    """The images Hearth keeps (a user's: PNG, JPEG, WebP or GIF, at most `max_bytes`, four
    a message), the other files, and why any image was not kept."""
    images: list[ExportedImage] = []
    others = []
    reasons: set[str] = set()
    for entry in files:
        if not isinstance(entry, dict) or entry.get("type") != "image":
            others.append(entry)
            continue
        url = entry.get("url")
        if role != "user":
            reasons.add("images in answers")
        elif not isinstance(url, str) or not url.startswith("data:"):
            reasons.add("images not in the file (links to Open WebUI's file store)")
        elif len(images) == MAX_IMAGES_PER_MESSAGE:
            reasons.add(f"images beyond {MAX_IMAGES_PER_MESSAGE} a message")
        elif (image := _image(url, max_bytes)) is None:
            reasons.add(f"images not PNG, JPEG, WebP or GIF, or over {max_bytes:,} bytes")
        else:
            images.append(image)
    return images, others, reasons


def _image(url: str, max_bytes: int) -> ExportedImage | None:
    """A `data:` URL's image as Hearth keeps it, or None (not base64, not a type Hearth
    takes, too large)."""
    header, _, payload = url.partition(",")
    if not header.endswith(";base64"):
        return None
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        return None
    kind = image_type(data)
    if kind is None or len(data) > max_bytes:
        return None
    return ExportedImage(content_type=kind, data=payload)  # type: ignore[arg-type]
