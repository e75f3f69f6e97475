"""The web benchmark's data: one user's 10,000 chats, one of them 2,000 messages long, with
messages of realistic length (a few hundred characters; answers with Markdown lists and
code blocks). The same conversations, deterministically, for Hearth and Open WebUI."""

from __future__ import annotations

import random
from dataclasses import dataclass

TOPICS = [
    "PostgreSQL indexes",
    "a Kubernetes rollout",
    "the quarterly report",
    "Python packaging",
    "a flaky test",
    "the onboarding guide",
    "a customer e-mail",
    "the budget spreadsheet",
    "TLS certificates",
    "a Rust borrow-checker error",
    "the release notes",
    "a SQL query plan",
    "the meeting summary",
    "a regex for dates",
    "Docker image size",
    "the API rate limits",
]
WORDS = (
    "the a we it this that data query table index server request user model cache page "
    "file error value time result list change update build deploy test run config option "
    "should could would might needs uses returns keeps makes gives shows takes reads writes "
    "quickly simply first then later again because although when while after before"
).split()
CODE = [
    "```python\ndef chunks(items, size):\n    for i in range(0, len(items), size):\n"
    "        yield items[i : i + size]\n```",
    "```sql\nSELECT id, title FROM chat\nWHERE owner_id = $1\nORDER BY updated_at DESC\n"
    "LIMIT 50;\n```",
    "```bash\nkubectl rollout status deploy/web --timeout=120s\n```",
    "```js\nconst total = rows.reduce((sum, r) => sum + r.amount, 0);\n```",
]


def _sentence(rng: random.Random) -> str:
    words = rng.choices(WORDS, k=rng.randint(8, 18))
    return " ".join(words).capitalize() + "."


def question(rng: random.Random, topic: str) -> str:
    text = f"About {topic}: " + " ".join(_sentence(rng) for _ in range(rng.randint(1, 3)))
    return text + " What would you do?"


def answer(rng: random.Random, topic: str) -> str:
    parts = [f"Here is how I would approach {topic}. " + _sentence(rng) + " " + _sentence(rng)]
    kind = rng.random()
    if kind < 0.35:
        parts.append("\n".join(f"- **{rng.choice(WORDS)}**: {_sentence(rng)}" for _ in range(3)))
    elif kind < 0.65:
        parts.append(rng.choice(CODE))
    parts.append(" ".join(_sentence(rng) for _ in range(rng.randint(1, 3))))
    return "\n\n".join(parts)


@dataclass
class Conversation:
    index: int
    title: str
    messages: list[tuple[str, str]]  # (role, content), oldest first
    age_days: float  # when it was last active, days before now


def conversations(
    chats: int = 10_000, long_messages: int = 2_000, short_messages: int = 4, seed: int = 5
) -> list[Conversation]:
    """`chats` conversations; number 0 is the long one (and the most recently active)."""
    rng = random.Random(seed)
    out = []
    for i in range(chats):
        topic = rng.choice(TOPICS)
        count = long_messages if i == 0 else short_messages
        messages = [
            ("user", question(rng, topic)) if n % 2 == 0 else ("assistant", answer(rng, topic))
            for n in range(count)
        ]
        title = f"{topic.capitalize()} #{i}"
        out.append(Conversation(i, title, messages, age_days=0.0 if i == 0 else i * 0.03))
    return out
