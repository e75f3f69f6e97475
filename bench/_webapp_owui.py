"""Open WebUI's side of the web benchmark (`webapp.py`): start it offline against the shared
PostgreSQL and the instant upstream, seed the same conversations straight into its tables,
and time the requests its single-page app makes.

Its data model (0.12): a `chat` row holds the whole conversation as JSON (`chat.history`:
messages by id with parent/children links), and since 0.9 every message is also a row of
`chat_message` (the app reads prompts from there). Seeding writes both, as its own
dual-write does.

Sending a message, as its web app does in 0.12: `POST /api/chat/completions` with the chat
id, the new user message and the id of the answer to come. The server stores the turn
(rewriting the chat's JSON and upserting the rows), builds the prompt from `chat_message`,
answers `{status, task_id}` and streams the answer to the browser over its websocket while
saving it. We time the POST (turn stored, generation started) and the moment the answer is
stored as done (read from the database every 5 ms). The app's follow-up tasks (title, tags,
follow-up suggestions: more generations) are not asked for.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import asyncpg
import httpx
import psycopg
from _procs import owui_offline_env
from webapp import EMAIL, MODEL, PASSWORD, SEND_TEXT, Ports, Relay, Service, spawn, wait_ready


class OpenWebUI:
    name = "Open WebUI"
    database = "openwebui"

    def __init__(
        self, work: Path, upstream: int, binary: Path, pg_socket_dir: Path, ports: Ports
    ) -> None:
        self.work = work
        self.ports = ports
        self.upstream = upstream
        self.binary = binary
        self.pg_socket_dir = pg_socket_dir
        self.data = work / "openwebui-data"
        self.data.mkdir(parents=True, exist_ok=True)
        self.port = 0
        self.service: Service | None = None
        self.client: httpx.Client | None = None
        self.token = ""
        self.user_id = ""
        self.long_chat = ""
        self.leaf = ""  # the last message of the long chat: the parent of the next question
        self.ready_cpu = 0.0
        self.session_id = "bench-" + uuid.uuid4().hex[:12]
        self._db: psycopg.Connection | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, relay: Relay, *, embedder: bool = True) -> float:
        if not self.binary.exists():  # reported as this system's error; Hearth's stand
            raise FileNotFoundError(
                f"{self.binary} not found: install Open WebUI there (see webapp.py's "
                "docstring) or give its venv with --owui-venv"
            )
        self.port = self.ports("openwebui")
        env = owui_offline_env(self.data, self.upstream) | {
            # psycopg 3 is what it installs (psycopg2 is not a dependency any more).
            "DATABASE_URL": relay.url(self.database).replace(
                "postgresql://", "postgresql+psycopg://"
            ),
        }
        if not embedder:
            # Embeddings from an OpenAI-compatible server: no local model is loaded.
            env |= {"RAG_EMBEDDING_ENGINE": "openai", "RAG_EMBEDDING_MODEL": "mock-embed"}
        args = [str(self.binary), "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        started = time.monotonic()
        self.service = spawn("openwebui", args, env, self.work / "openwebui.log")
        ready = wait_ready(self.base + "/health", self.service.popen, started, timeout=400)
        self.ready_cpu = self.service.cpu()
        return ready

    def stop(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
        if self._db is not None:
            self._db.close()
            self._db = None
        if self.service is not None:
            self.service.stop()
            self.service = None

    def sign_up(self) -> None:
        r = httpx.post(
            self.base + "/api/v1/auths/signup",
            json={"name": "Bench", "email": EMAIL, "password": PASSWORD},
            timeout=60,
        )
        r.raise_for_status()
        self.user_id = r.json()["id"]

    def sign_in(self) -> None:
        r = httpx.post(
            self.base + "/api/v1/auths/signin",
            json={"email": EMAIL, "password": PASSWORD},
            timeout=60,
        )
        r.raise_for_status()
        self.token = r.json()["token"]
        self.client = httpx.Client(
            base_url=self.base, timeout=120, headers={"authorization": f"Bearer {self.token}"}
        )
        self._db = psycopg.connect(
            f"host={self.pg_socket_dir} user=postgres dbname={self.database}", autocommit=True
        )

    async def seed(self, database_url: str, convs) -> None:  # type: ignore[no-untyped-def]
        conn = await asyncpg.connect(database_url)
        try:
            now = time.time()
            chat_rows, message_rows = [], []
            for conv in convs:
                chat_id = str(uuid.uuid4())
                updated = int(now - conv.age_days * 86400)
                created = updated - 60 * len(conv.messages)
                history: dict[str, dict] = {}
                parent = None
                ids = [str(uuid.uuid4()) for _ in conv.messages]
                for n, (role, content) in enumerate(conv.messages):
                    mid = ids[n]
                    message = {
                        "id": mid,
                        "parentId": parent,
                        "childrenIds": [ids[n + 1]] if n + 1 < len(ids) else [],
                        "role": role,
                        "content": content,
                        "timestamp": created + 30 * n,
                    }
                    if role == "user":
                        message["models"] = [MODEL]
                    else:
                        message |= {"model": MODEL, "modelName": MODEL, "done": True}
                    message["user_id"] = self.user_id
                    history[mid] = message
                    message_rows.append(
                        (
                            f"{chat_id}-{mid}",
                            chat_id,
                            self.user_id,
                            role,
                            parent,
                            json.dumps(content),
                            MODEL if role == "assistant" else None,
                            True,
                            created + 30 * n,
                            created + 30 * n,
                        )
                    )
                    parent = mid
                chat = {
                    "id": chat_id,
                    "title": conv.title,
                    "models": [MODEL],
                    "params": {},
                    "history": {"currentId": ids[-1], "messages": history},
                    "messages": [{"role": "user", "content": conv.messages[0][1]}],
                    "files": [],
                    "tags": [],
                    "timestamp": created * 1000,
                }
                chat_rows.append(
                    (
                        chat_id,
                        self.user_id,
                        conv.title,
                        created,
                        updated,
                        False,
                        json.dumps(chat),
                        False,
                        "{}",
                        updated,
                        ids[-1],
                        "{}",
                    )
                )
                if conv.index == 0:
                    self.long_chat, self.leaf = chat_id, ids[-1]
                    self.long_count = len(ids)
            await conn.copy_records_to_table(
                "chat",
                records=chat_rows,
                columns=[
                    "id",
                    "user_id",
                    "title",
                    "created_at",
                    "updated_at",
                    "archived",
                    "chat",
                    "pinned",
                    "meta",
                    "last_read_at",
                    "current_message_id",
                    "variables",
                ],
            )
            await conn.copy_records_to_table(
                "chat_message",
                records=message_rows,
                columns=[
                    "id",
                    "chat_id",
                    "user_id",
                    "role",
                    "parent_id",
                    "content",
                    "model_id",
                    "done",
                    "created_at",
                    "updated_at",
                ],
            )
            await conn.execute("ANALYZE chat; ANALYZE chat_message")
        finally:
            await conn.close()

    # the operations
    def list_api(self) -> None:
        r = self.client.get("/api/v1/chats/", params={"page": 1})
        assert r.status_code == 200 and len(r.json()) == 60, r.text[:300]

    def open_api(self) -> None:
        r = self.client.get(f"/api/v1/chats/{self.long_chat}")
        assert r.status_code == 200, r.text[:300]
        assert len(r.json()["chat"]["history"]["messages"]) >= self.long_count, r.text[:300]

    def send(self) -> dict:
        question, answer = str(uuid.uuid4()), str(uuid.uuid4())
        body = {
            "model": MODEL,
            "stream": True,
            "messages": [{"role": "user", "content": SEND_TEXT}],
            "chat_id": self.long_chat,
            "parent_id": self.leaf,
            "user_message": {
                "id": question,
                "parentId": self.leaf,
                "childrenIds": [],
                "role": "user",
                "content": SEND_TEXT,
                "models": [MODEL],
                "timestamp": int(time.time()),
            },
            "message_ids": [{"model_id": MODEL, "message_id": answer}],
            "params": {},
            "features": {},
            "variables": {},
            # The web app sends its websocket's id: the answer is generated in a task and
            # streamed to the socket while the POST returns. (No socket is connected here;
            # the events go to an empty room.) Without it, the POST would hold the whole
            # generation and return null.
            "session_id": self.session_id,
        }
        started = time.perf_counter()
        r = self.client.post("/api/chat/completions", json=body)
        accepted = (time.perf_counter() - started) * 1000
        assert r.status_code == 200, r.text[:300]
        assert (r.json() or {}).get("status") is True, r.text[:300]
        row = f"{self.long_chat}-{answer}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            done = self._db.execute(
                "SELECT done, content FROM chat_message WHERE id = %s", (row,)
            ).fetchone()
            if done and done[0] and done[1]:
                break
            time.sleep(0.005)
        else:
            raise TimeoutError(f"answer {answer} not stored as done")
        stored = (time.perf_counter() - started) * 1000
        self.leaf = answer
        return {"accepted": accepted, "end": stored}

    def operations(self) -> dict:
        return {"list": self.list_api, "open": self.open_api, "send": self.send}

    def roundtrip_operations(self) -> dict:
        return {
            "list": self.list_api,
            "open": self.open_api,
            "send": lambda: self.send() and None,
        }

    def extra(self, relay: Relay, args) -> dict:  # type: ignore[no-untyped-def]
        """Start-up and idle memory without the local embedding model (remote embeddings)."""
        from webapp import idle_rss, log

        log("Open WebUI: start with remote embeddings (no local model)")
        ready = self.start(relay, embedder=False)
        cpu = self.ready_cpu
        rss = idle_rss(self.service, args.settle)
        self.stop()
        return {
            "ready_noembedder_s": round(ready, 2),
            "ready_noembedder_cpu_s": round(cpu, 2),
            "rss_idle_noembedder_mb": round(rss / 2**20),
        }
