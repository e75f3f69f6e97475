"""Branches of a chat: regenerating an answer or editing a question adds a version beside
the old one (nothing is deleted), and selecting a message shows its branch. These are
methods of `Chats` (`chat/service.py`), kept here with the tree they grow."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select

from hearth.accounts.principal import Principal
from hearth.chat import tree
from hearth.chat.images import copy_images, with_images
from hearth.chat.models import Chat, Message
from hearth.chat.schemas import MessagePublic, MessagesPage
from hearth.db.session import Database
from hearth.errors import InvalidRequest, NotFound


class ChatBranches:
    database: Database

    async def messages(
        self,
        principal: Principal,
        chat_id: uuid.UUID,
        *,
        before: int | None = None,
        limit: int = 50,
    ) -> MessagesPage:  # `Chats.messages`
        raise NotImplementedError

    async def fork(
        self, principal: Principal, chat_id: uuid.UUID, message_id: int, content: str | None
    ) -> MessagePublic:
        """The question to answer again, nothing deleted. Regenerate (`content` None):
        message `message_id` if it is a question, the question it answers if it is an
        answer; the chat's path then ends at it, and the new answer becomes a sibling of
        the old ones. Edit: a new question with `content` beside message `message_id` (a
        sibling: it follows the same message), now the active leaf; the old branch stays."""
        async with self.database.session() as session:
            chat = await session.scalar(_locked(principal, chat_id))
            if chat is None:
                raise NotFound(f"no message {message_id} in chat {chat_id}")
            message = await tree.message_of(session, chat_id, message_id)
            if content is not None:
                if message.role != "user":
                    raise InvalidRequest("Only your own messages can be edited.")
                question = Message(
                    chat_id=chat_id, parent_id=message.parent_id, role="user", content=content
                )
                session.add(question)
                await session.flush()
                await copy_images(session, chat_id, message.id, question.id)
                chat.updated_at = func.now()
            elif message.role == "user":
                question = message
            else:
                question = None
                if message.parent_id is not None:
                    question = await tree.message_of(session, chat_id, message.parent_id)
                if question is None or question.role != "user":
                    raise InvalidRequest("This answer follows no question to answer again.")
            chat.current_message_id = question.id
            await session.commit()
            await session.refresh(question)
            (public,) = await with_images(session, [MessagePublic.model_validate(question)])
            return public

    async def select_branch(
        self, principal: Principal, chat_id: uuid.UUID, message_id: int
    ) -> MessagesPage:
        """Show the branch through message `message_id`: the active leaf becomes the newest
        message at or below it (so a branch opens where it was left), and the chat shows
        the path to it. Returns that path's latest page."""
        async with self.database.session() as session:
            chat = await session.scalar(_locked(principal, chat_id))
            leaf = await session.scalar(tree.newest_below(chat_id, message_id))
            if chat is None or leaf is None:
                raise NotFound(f"no message {message_id} in chat {chat_id}")
            chat.current_message_id = leaf
            await session.commit()
        return await self.messages(principal, chat_id)


def _locked(principal: Principal, chat_id: uuid.UUID):  # type: ignore[no-untyped-def]
    """The owner's chat row, locked: changes to one chat's tree take turns."""
    return (
        select(Chat).where(Chat.id == chat_id, Chat.owner_id == principal.user_id).with_for_update()
    )
