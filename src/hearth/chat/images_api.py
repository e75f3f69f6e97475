"""Routes of images in chats: uploaded for a message about to be sent (multipart `file`),
removed before it is, and read back by the chat's owner or a live link's readers."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request, UploadFile, status
from fastapi.responses import Response

from hearth.accounts.auth import CallerDep
from hearth.chat.images import ChatImages
from hearth.chat.schemas import ImagePublic
from hearth.errors import InvalidRequest
from hearth.gateway.vision import vision

router = APIRouter(tags=["chats"])


def _images(request: Request) -> ChatImages:
    return request.app.state.chat_images


ImagesDep = Annotated[ChatImages, Depends(_images)]


@router.post(
    "/api/chats/{chat_id}/images",
    status_code=status.HTTP_201_CREATED,
    responses={
        400: {
            "description": "Not PNG, JPEG, WebP or GIF; too large; or the chat's "
            "model does not read images."
        }
    },
)
async def upload_image(
    chat_id: uuid.UUID, file: UploadFile, request: Request, images: ImagesDep, caller: CallerDep
) -> ImagePublic:
    """An image for the next message (multipart `file`): PNG, JPEG, WebP or GIF, told by its
    bytes, at most `chat_image_max_bytes`; then send the message with its id in `images`.
    400 naming the model when the chat's model does not read images (nothing is stored)."""
    chat = await request.app.state.chats.get(caller, chat_id)  # 404 unless the caller's
    known = vision(request.app.state.routes, chat.model)
    if not known.reads_images:
        raise InvalidRequest(
            f"The model '{chat.model}' cannot read images ({known.why_not}); choose a model "
            "that reads images to attach one.",
            param="file",
        )
    data = await file.read(images.max_bytes + 1)  # enough to tell it is too large
    return await images.upload(caller, chat_id, data)


@router.delete("/api/chats/{chat_id}/images/{image_id}", status_code=status.HTTP_204_NO_CONTENT)
async def discard_image(
    chat_id: uuid.UUID, image_id: uuid.UUID, images: ImagesDep, caller: CallerDep
) -> Response:
    """Remove an image uploaded for a message not sent yet (a sent one stays with it)."""
    await images.discard(caller, chat_id, image_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/api/chats/{chat_id}/images/{image_id}",
    response_class=Response,
    responses={200: {"content": {"image/*": {}}, "description": "The image's bytes."}},
)
async def read_image(
    chat_id: uuid.UUID, image_id: uuid.UUID, images: ImagesDep, caller: CallerDep
) -> Response:
    """An image of the caller's chat; 404 for anyone else."""
    return _image(*await images.read(caller, chat_id, image_id))


@router.get(
    "/api/shared/{token}/images/{image_id}",
    response_class=Response,
    responses={200: {"content": {"image/*": {}}, "description": "The image's bytes."}},
)
async def read_shared_image(
    token: str, image_id: uuid.UUID, images: ImagesDep, caller: CallerDep
) -> Response:
    """An image of a message a live link shows, to anyone signed in; 404 otherwise."""
    return _image(*await images.read_shared(token, image_id))


def _image(content_type: str, data: bytes) -> Response:
    # The type was told by the bytes at upload, and is never sniffed again by a browser;
    # an image is private to who may read its chat (no shared caches).
    return Response(
        data,
        media_type=content_type,
        headers={
            "x-content-type-options": "nosniff",
            "cache-control": "private, max-age=86400",
            "content-disposition": "inline",
            "content-security-policy": "default-src 'none'; sandbox",
        },
    )
