"""Open WebUI's "Export chats" file, read into Hearth's own export shape (`ChatExport`).

The file is a JSON array of chats as Open WebUI's `GET /api/v1/chats/all` returns them:
`title`, `created_at` and `updated_at` (epoch seconds), `archived`, `pinned`, `meta.tags`,
`folder_id`, and `chat`, the conversation as its web client keeps it: `models`, `system`,
`params`, and `history` = {`messages`: {id: message}, `currentId`}, a tree in which each
message names its `parentId` (regenerating an answer or editing a question adds a branch).
Older files have only the flat `chat.messages` list.

Hearth keeps the tree as it is: every message of every branch, each after the one its
`parentId` names (siblings in the order of their parent's `childrenIds`, as Open WebUI's
arrows show them), and `currentId` (the message the user saw last) as the chat's
active leaf. Its tags (`meta.tags`, or `chat.tags` in older files) become Hearth's, as the
file spells them, and a user's images (`files` of type `image` with a `data:` URL) are kept
with their message. What else a chat holds that Hearth cannot keep (folders, attached
files other than a user's images, ratings, sampling settings, tags past Hearth's limits,
fields it does not know) is named in the chat's result, never dropped silently; only what
carries nothing Hearth could keep (ids, read state, display hints) is ignored.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hearth.chat.openwebui_images import taken_images
from hearth.chat.schemas import (
    MAX_MESSAGE_CHARS,
    MAX_TAG_CHARS,
    MAX_TAGS_PER_CHAT,
    ChatExport,
    ExportedImage,
    ExportedMessage,
    tag_key,
    tag_name,
)

MAX_SYSTEM_PROMPT_CHARS = 20_000  # ChatSettings.system_prompt
MAX_TITLE_CHARS = 300


class NotImportable(Exception):
    """Why one chat of the file cannot be imported (the others still are)."""


@dataclass(frozen=True)
class ImportModels:
    """The chat models served here, and the one an imported chat takes when its own is not."""

    served: frozenset[str]
    default: str | None


@dataclass
class Converted:
    export: ChatExport
    not_imported: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class _Loose(BaseModel):
    # Open WebUI's own shapes: the fields Hearth reads are typed, the rest kept aside
    # (`model_extra`) to be sorted into ignored and reported.
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class OpenWebUIMessage(_Loose):
    parent_id: str | None = Field(default=None, alias="parentId")
    children_ids: list[Any] | None = Field(default=None, alias="childrenIds")  # their order
    role: str | None = None
    content: Any = ""
    timestamp: float | None = None
    model: str | None = None
    done: bool | None = None
    error: Any = None


class OpenWebUIHistory(_Loose):
    messages: dict[str, OpenWebUIMessage] = Field(default_factory=dict)
    current_id: str | None = Field(default=None, alias="currentId")


class OpenWebUIConversation(_Loose):
    title: str | None = None
    timestamp: float | None = None  # milliseconds
    models: list[str | None] = Field(default_factory=list)
    system: str | None = None
    params: dict[str, Any] | None = None
    options: dict[str, Any] | None = None  # what older versions called `params`
    tags: list[Any] | None = None  # older versions kept tags here
    history: OpenWebUIHistory | None = None
    messages: list[OpenWebUIMessage] | None = None


class OpenWebUIChat(_Loose):
    title: str | None = None
    chat: OpenWebUIConversation
    created_at: float | None = None
    updated_at: float | None = None
    archived: bool | None = False
    pinned: bool | None = False
    meta: dict[str, Any] | None = None
    folder_id: str | None = None
    current_message_id: str | None = None


# What carries nothing Hearth could keep: ids, a link on the other site, read state,
# display hints, and figures derived from the messages (usage, status of a web search
# while it ran).
_IGNORED_CHAT = {"id", "user_id", "share_id", "last_read_at", "timer_at", "context_usage"}
_IGNORED_CONVERSATION = {"id"}
_IGNORED_MESSAGE = {
    "id",
    "models",
    "modelName",
    "modelIdx",
    "userContext",
    "lastSentence",
    "statusHistory",
    "followUps",
    "info",
    "usage",
    "context",
}
# What carries the user's data, which Hearth does not keep (yet): named in the result.
_DROPPED_CHAT = {"tasks": "tasks", "summary": "summary", "variables": "prompt variables"}
_DROPPED_CONVERSATION = {"files": "files attached to the chat"}
_DROPPED_MESSAGE = {
    "files": "attached files",
    "sources": "sources",
    "citations": "sources",
    "annotation": "ratings and feedback",
    "code_executions": "code runs",
}
_SETTINGS = {"temperature", "max_tokens", "system"}


def title_of(raw: Any) -> str:
    """The chat's title as the file gives it, for its result (also when it is unreadable)."""
    if not isinstance(raw, dict):
        return "(untitled)"
    conversation = raw.get("chat") if isinstance(raw.get("chat"), dict) else {}
    for title in (raw.get("title"), conversation.get("title")):
        if isinstance(title, str) and title.strip():
            return " ".join(title.split())[:80]
    return "(untitled)"


def from_open_webui(
    raw: Any, models: ImportModels, *, max_image_bytes: int = 10 * 1024 * 1024
) -> Converted:
    """One chat of Open WebUI's file as Hearth's export, with what was left out. A user's
    images (`files` of type `image` with a `data:` URL) are kept when Hearth takes them
    (PNG, JPEG, WebP or GIF, at most `max_image_bytes`, four a message); the others are
    named in the result."""
    if not isinstance(raw, dict) or not isinstance(raw.get("chat"), dict):
        raise NotImportable("it is not an Open WebUI chat (an object with a 'chat' object)")
    try:
        return _converted(OpenWebUIChat.model_validate(raw), models, max_image_bytes)
    except ValidationError as exc:  # its shape, or a value Hearth's export refuses
        raise NotImportable(_problem(exc)) from None


def _converted(chat: OpenWebUIChat, models: ImportModels, max_image_bytes: int) -> Converted:
    conversation = chat.chat
    dropped = _Dropped()
    dropped.fields(chat, _IGNORED_CHAT, _DROPPED_CHAT)
    dropped.fields(conversation, _IGNORED_CONVERSATION, _DROPPED_CONVERSATION)
    tags = _tags([*_listed((chat.meta or {}).get("tags")), *_listed(conversation.tags)], dropped)
    if chat.folder_id:
        dropped.note("its folder")

    ordered, parents, current, notes = _tree(conversation, chat.current_message_id)
    created = _moment(chat.created_at) or _moment(conversation.timestamp)
    messages = [
        _message(n, m, parent, created, dropped, max_image_bytes)
        for n, (m, parent) in enumerate(zip(ordered, parents, strict=True), 1)
    ]

    params = {**(conversation.options or {}), **(conversation.params or {})}
    others = sorted(k for k, v in params.items() if k not in _SETTINGS and _holds(v))
    if others:
        dropped.note(f"settings: {', '.join(others)}")
    system = conversation.system or params.get("system") or None
    too_long = not isinstance(system, str) or len(system) > MAX_SYSTEM_PROMPT_CHARS
    if system is not None and too_long:
        dropped.note(f"its system prompt (longer than {MAX_SYSTEM_PROMPT_CHARS:,} characters)")
        system = None
    temperature = _number(params.get("temperature"), 0, 2, float, "temperature", dropped)
    max_tokens = _number(params.get("max_tokens"), 1, 32_768, int, "max_tokens", dropped)

    title = " ".join((chat.title or conversation.title or "").split())
    if len(title) > MAX_TITLE_CHARS:
        title = title[: MAX_TITLE_CHARS - 1] + "…"
        notes.append(f"its title was shortened to {MAX_TITLE_CHARS} characters")
    model, model_note = _model([m for m in conversation.models if m], models)
    if model_note:
        notes.append(model_note)
    export = ChatExport(
        title=title,
        model=model,
        archived=bool(chat.archived),
        pinned=bool(chat.pinned),
        tags=tags,
        created_at=created,
        updated_at=_moment(chat.updated_at) or created,
        messages=messages,
        current=None if current is None else current + 1,
        system_prompt=system,
        temperature=temperature,
        max_tokens=max_tokens,
    )
    return Converted(export, dropped.lines(), notes)


def _tree(
    conversation: OpenWebUIConversation, fallback: str | None
) -> tuple[list[OpenWebUIMessage], list[int | None], int | None, list[str]]:
    """Every message, each after the one it follows (depth first, siblings in their
    parent's `childrenIds` order, then by time); each one's parent by its place from 0
    (None: a first message); the current message's place; notes."""
    tree = conversation.history.messages if conversation.history else {}
    if not tree:
        flat = list(conversation.messages or [])
        line = [n - 1 if n else None for n in range(len(flat))]
        return flat, line, (len(flat) - 1 if flat else None), []
    notes: list[str] = []
    children: dict[str | None, list[str]] = {}
    for key, message in tree.items():
        parent = message.parent_id
        if parent is not None and parent not in tree:
            notes.append("a message's parent is missing: its branch starts at it")
            parent = None
        children.setdefault(parent, []).append(key)

    def in_order(parent: str | None) -> list[str]:
        listed = (tree[parent].children_ids or []) if parent is not None else []
        rank = {key: n for n, key in enumerate(listed) if isinstance(key, str)}
        keys = children.get(parent, [])
        return sorted(keys, key=lambda k: (rank.get(k, len(rank)), tree[k].timestamp or 0))

    ordered: list[OpenWebUIMessage] = []
    parents: list[int | None] = []
    place: dict[str, int] = {}
    stack: list[tuple[str | None, str]] = [(None, key) for key in reversed(in_order(None))]
    while stack:
        parent, key = stack.pop()
        place[key] = len(ordered)
        ordered.append(tree[key])
        parents.append(None if parent is None else place[parent])
        stack.extend((key, child) for child in reversed(in_order(key)))
    if len(ordered) < len(tree):  # what no first message leads to is a loop
        raise NotImportable("its message history loops (a message is its own ancestor)")

    current = conversation.history.current_id if conversation.history else None
    current = current if current in tree else fallback
    if current not in tree:
        # No usable currentId: the newest message nothing answers is the current one.
        leaves = [key for key in tree if key not in children] or list(tree)
        current = max(leaves, key=lambda key: tree[key].timestamp or 0)
        notes.append("it named no current message: its newest branch is the one shown")
    return ordered, parents, place[current], list(dict.fromkeys(notes))


def _message(
    n: int,
    message: OpenWebUIMessage,
    parent: int | None,
    created: datetime | None,
    dropped: _Dropped,
    max_image_bytes: int,
) -> ExportedMessage:
    if not message.role:
        raise NotImportable(f"message {n} has no role")
    if message.role not in ("user", "assistant"):
        raise NotImportable(f"a message has role '{message.role}', which Hearth cannot import")
    if not isinstance(message.content, str):
        raise NotImportable(f"message {n} is not text")
    if len(message.content) > MAX_MESSAGE_CHARS:
        raise NotImportable(f"message {n} is longer than {MAX_MESSAGE_CHARS:,} characters")
    extra = message.model_extra or {}
    images: list[ExportedImage] = []
    if isinstance(extra.get("files"), list):
        # A user's images are kept; what is left in `files` is reported as attached files.
        images, extra["files"], reasons = taken_images(
            message.role, extra["files"], max_image_bytes
        )
        for reason in sorted(reasons):
            dropped.count(reason)
    dropped.fields(message, _IGNORED_MESSAGE, _DROPPED_MESSAGE, per_message=True)
    status, error = "complete", None
    if message.role == "assistant" and message.error:
        status, error = "failed", _error_text(message.error)
    elif message.role == "assistant" and message.done is False:
        status = "interrupted"  # never finished there (Open WebUI marks stopped ones done)
    answered_by = message.model[:200] if message.role == "assistant" and message.model else None
    return ExportedMessage(
        parent=None if parent is None else parent + 1,
        role=message.role,  # type: ignore[arg-type]
        content=message.content,
        status=status,  # type: ignore[arg-type]
        model=answered_by,
        error=error,
        created_at=_moment(message.timestamp) or created,
        images=images,
    )


class _Dropped:
    """What a chat held that Hearth does not keep, gathered into readable lines."""

    def __init__(self) -> None:
        self._notes: list[str] = []
        self._per_message: Counter[str] = Counter()
        self._unknown: set[str] = set()

    def note(self, line: str) -> None:
        self._notes.append(line)

    def count(self, what: str) -> None:
        """One more message that held `what`."""
        self._per_message[what] += 1

    def fields(
        self,
        model: BaseModel,
        ignored: set[str],
        dropped: dict[str, str],
        *,
        per_message: bool = False,
    ) -> None:
        for name, value in (model.model_extra or {}).items():
            if name in ignored or not _holds(value):
                continue
            if name not in dropped:
                self._unknown.add(name)
            elif per_message:
                self._per_message[dropped[name]] += 1
            else:
                self.note(f"its {dropped[name]}")

    def lines(self) -> list[str]:
        lines = list(self._notes)
        for what, count in self._per_message.items():
            lines.append(f"{what} of {count} message{'s' if count > 1 else ''}")
        if self._unknown:
            lines.append(f"fields Hearth does not know: {', '.join(sorted(self._unknown))}")
        return lines


def _tags(raw: list[Any], dropped: _Dropped) -> list[str]:
    """The chat's tags as Hearth keeps them (each once, case-insensitively); those it cannot
    keep (not text, too long, past the limit of a chat) named."""
    kept: dict[str, str] = {}
    refused: list[str] = []
    for tag in raw:
        name = tag.get("name") if isinstance(tag, dict) else tag  # older files: {"name": ...}
        try:
            name = tag_name(name) if isinstance(name, str) else None
        except ValueError:
            name = None
        if name is None:
            refused.append(str(tag)[:60])
        elif tag_key(name) not in kept:
            if len(kept) == MAX_TAGS_PER_CHAT:
                refused.append(name)
            else:
                kept[tag_key(name)] = name
    if refused:
        limits = f"at most {MAX_TAGS_PER_CHAT} a chat, each at most {MAX_TAG_CHARS} characters"
        dropped.note(f"tags Hearth cannot keep ({limits}): {', '.join(refused)}")
    return list(kept.values())


def _model(wanted: list[str], models: ImportModels) -> tuple[str, str | None]:
    """The chat's model here: its own if served, else the site's default (said in a note),
    else its own name as it is (no chat model is served to continue it with)."""
    own = wanted[0] if wanted else None
    if own in models.served:
        return own, None  # type: ignore[return-value]
    if models.default is not None:
        if own is None:
            return models.default, None
        return models.default, (
            f"its model '{own}' is not served here: the chat continues with "
            f"'{models.default}' (its answers keep their model's name)"
        )
    return (own or "unknown")[:200], None


def _number(
    value: Any, low: float, high: float, kind: type[float] | type[int], name: str, dropped: _Dropped
) -> Any:
    """A setting Hearth keeps, if it is a number in Hearth's range (else named as dropped)."""
    if value is None or value == "":
        return None
    try:
        number = kind(value)
    except (TypeError, ValueError, OverflowError):
        number = None
    if number is None or not low <= number <= high:
        dropped.note(f"its {name} {value!r} (Hearth takes {low} to {high})")
        return None
    return number


def _moment(value: float | None) -> datetime | None:
    """An epoch time: seconds where Open WebUI writes `created_at`, milliseconds in its
    `chat.timestamp`, nanoseconds in newer fields; told apart by their size."""
    if value is None or value <= 0:
        return None
    for scale in (1, 1e3, 1e6, 1e9):
        if value / scale < 1e11:  # before the year 5000
            try:
                return datetime.fromtimestamp(value / scale, UTC)
            except (OverflowError, OSError, ValueError):
                return None
    return None


def _error_text(error: Any) -> str:
    if isinstance(error, dict) and isinstance(error.get("content"), str):
        text = error["content"]
    elif isinstance(error, str):
        text = error
    else:
        text = "The answer failed in Open WebUI."
    return text[:MAX_MESSAGE_CHARS]


def _holds(value: Any) -> bool:
    """Whether a field carries anything: a null, false, or an empty text, list or object
    carries nothing."""
    return value not in (None, False, "") and value != [] and value != {}


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _problem(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"{where}: {first['msg']}" if where else first["msg"]
