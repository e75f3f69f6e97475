"""The chat page in a browser, Hearth vs Open WebUI side by side in one run, and what
writing a chat's title costs the answer (issue 5's "Measured" line for the chat).

1. **Page weight and time to interactive.** Debian's chromium, driven by Playwright and
   launched as the browser tests launch it, loads each system's chat page signed in:
   the new-chat page (`/`) and a chat with a few messages (`/c/{id}`), N times with an
   empty HTTP cache (a new browser context each time: cold) and N times with the cache of
   a context that loaded the page once before (warm), the systems' loads interleaved so
   both meet the same machine. Per load: bytes transferred and decoded per resource type
   (document, script, stylesheet, font, image, other) from the browser's Resource Timing,
   when the message box became editable, and time to interactive (TTI); medians and p95.
   How each is defined: `_page_load.py`'s docstring, repeated in the output.
2. **Title generation vs time to first token**, Hearth only, on its real local model:
   the first answer of a new chat (its title is written after it) against the first of a
   chat created with a title (none to write) and a later answer in a chat that has its
   title; whether the title request ever overlaps the answer. See `_chat_titles.py`.

Both systems hold the same chats (`--chats`, 4 messages each, the opened one with
`--messages`; from `_webapp_data.py`: Markdown lists and code blocks). Hearth is `hearth
up` as shipped (embedded PostgreSQL, its local model SmolLM2-135M and embedder); Open
WebUI runs offline as ../shared/PEERS.md says (its SQLite, its local embedder), its models
from the instant upstream `_fast_upstream.py`, its "What's new" dialog dismissed once
after sign-up, as a user would.

Needs the dev extra (httpx, Playwright) and Debian's chromium (`HEARTH_TEST_CHROMIUM` to
use another); `--help` needs only Hearth. Open WebUI goes in its own venv (`--owui-venv`):
    python3 -m venv /work/peers/openwebui && /work/peers/openwebui/bin/pip install open-webui
Run:
    .venv/bin/python bench/webapp_weight.py --loads 10 --rounds 20
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _page_load import browse, summarise
from _procs import (
    Ports,
    Service,
    add_owui_venv,
    add_port_base,
    owui_offline_env,
    spawn,
    start_fast_upstream,
    wait_ready,
)
from _webapp_data import Conversation, conversations
from _weight_report import render

if TYPE_CHECKING:
    import httpx

HERE = Path(__file__).resolve().parent
EMAIL, PASSWORD = "bench@example.com", "bench-Password-123"


def log(*args: object) -> None:
    print(time.strftime("%H:%M:%S"), *args, flush=True)


# --- Hearth ------------------------------------------------------------------------------


class Hearth:
    name = "Hearth"
    box = "#prompt"  # the message box

    def __init__(self, work: Path, ports: Ports) -> None:
        self.work, self.ports = work, ports
        self.data = work / "hearth-data"
        self.port = 0
        self.service: Service | None = None
        self.client: httpx.Client | None = None
        self.chat_id = ""

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def database_url(self) -> str:
        return f"postgresql://postgres@/postgres?host={self.data / 'postgres'}"

    def start(self) -> float:
        self.port = self.ports("hearth")
        env = {k: v for k, v in os.environ.items() if not k.startswith("HEARTH_")}
        env |= {"HEARTH_DATA_DIR": str(self.data), "HEARTH_LOG_LEVEL": "warning"}
        args = [sys.executable, "-m", "hearth", "up", "--port", str(self.port)]
        started = time.monotonic()
        self.service = spawn("hearth", args, env, self.work / "hearth.log")
        return wait_ready(self.base + "/readyz", self.service.popen, started)

    def stop(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
        if self.service is not None:
            self.service.stop()
            self.service = None

    def sign_up(self) -> None:
        import httpx

        signup = {"email": EMAIL, "name": "Bench", "password": PASSWORD}
        httpx.post(self.base + "/api/auth/signup", json=signup, timeout=30).raise_for_status()
        client = httpx.Client(base_url=self.base, timeout=120)
        r = client.post("/api/auth/signin", json={"email": EMAIL, "password": PASSWORD})
        r.raise_for_status()
        client.headers["x-csrf-token"] = client.get("/api/auth/me").json()["csrf_token"]
        self.client = client

    def add_chats(self, convs: list[Conversation]) -> None:
        """Import them (Hearth's own export format), the opened one the most recent."""
        r = self.client.post("/api/chats", json={})
        r.raise_for_status()
        model = r.json()["model"]  # the site's default chat model
        self.client.delete(f"/api/chats/{r.json()['id']}").raise_for_status()
        now = dt.datetime.now(dt.UTC)
        for conv in reversed(convs):
            at = now - dt.timedelta(days=conv.age_days, minutes=1)
            body = {
                "title": conv.title,
                "model": model,
                "updated_at": at.isoformat(),
                "created_at": (at - dt.timedelta(minutes=len(conv.messages))).isoformat(),
                "messages": [
                    {"role": role, "content": content, "model": model if role != "user" else None}
                    for role, content in conv.messages
                ],
            }
            r = self.client.post("/api/chats/import", json=body)
            r.raise_for_status()
            if conv.index == 0:
                self.chat_id = r.json()["id"]

    def storage_state(self, browser: Any) -> dict:
        context = browser.new_context()
        r = context.request.post(
            self.base + "/api/auth/signin", data={"email": EMAIL, "password": PASSWORD}
        )
        assert r.ok, r.text()
        state = context.storage_state()
        context.close()
        return state

    def pages(self) -> dict[str, str]:
        return {"new chat": self.base + "/", "chat": f"{self.base}/c/{self.chat_id}"}


# --- Open WebUI --------------------------------------------------------------------------


class OpenWebUI:
    name = "Open WebUI"
    box = "#chat-input"  # its rich-text message box (contenteditable)

    def __init__(self, work: Path, ports: Ports, binary: Path, upstream: int) -> None:
        self.work, self.ports, self.binary, self.upstream = work, ports, binary, upstream
        self.data = work / "openwebui-data"
        self.port = 0
        self.service: Service | None = None
        self.client: httpx.Client | None = None
        self.token = ""
        self.chat_id = ""
        self.version = ""

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> float:
        if not self.binary.exists():
            raise FileNotFoundError(
                f"{self.binary} not found: install Open WebUI there (see --help) or give its "
                "venv with --owui-venv"
            )
        self.port = self.ports("openwebui")
        self.data.mkdir(parents=True, exist_ok=True)
        env = owui_offline_env(self.data, self.upstream)
        args = [str(self.binary), "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        started = time.monotonic()
        self.service = spawn("openwebui", args, env, self.work / "openwebui.log")
        return wait_ready(self.base + "/health", self.service.popen, started, timeout=400)

    def stop(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
        if self.service is not None:
            self.service.stop()
            self.service = None

    def sign_up(self) -> None:
        import httpx

        r = httpx.post(
            self.base + "/api/v1/auths/signup",
            json={"name": "Bench", "email": EMAIL, "password": PASSWORD},
            timeout=60,
        )
        r.raise_for_status()
        self.token = r.json()["token"]
        self.client = httpx.Client(
            base_url=self.base, timeout=120, headers={"authorization": f"Bearer {self.token}"}
        )
        self.version = self.client.get("/api/version").json().get("version", "")

    def add_chats(self, convs: list[Conversation]) -> None:
        """Through its API (`POST /api/v1/chats/new`), the opened one last (most recent)."""
        import uuid

        for conv in reversed(convs):
            ids = [str(uuid.uuid4()) for _ in conv.messages]
            now = int(time.time())
            history = {}
            for n, (role, content) in enumerate(conv.messages):
                message = {
                    "id": ids[n],
                    "parentId": ids[n - 1] if n else None,
                    "childrenIds": [ids[n + 1]] if n + 1 < len(ids) else [],
                    "role": role,
                    "content": content,
                    "timestamp": now - 30 * (len(ids) - n),
                }
                if role == "user":
                    message["models"] = ["mock"]
                else:
                    message |= {"model": "mock", "modelName": "mock", "done": True}
                history[ids[n]] = message
            chat = {
                "title": conv.title,
                "models": ["mock"],
                "params": {},
                "history": {"currentId": ids[-1], "messages": history},
                "messages": [{"role": role, "content": content} for role, content in conv.messages],
                "files": [],
                "tags": [],
                "timestamp": now * 1000,
            }
            r = self.client.post("/api/v1/chats/new", json={"chat": chat})
            r.raise_for_status()
            if conv.index == 0:
                self.chat_id = r.json()["id"]

    def storage_state(self, browser: Any) -> dict:
        """Signed in (its token in localStorage, as its sign-in page leaves it), with the
        "What's new" dialog of a first sign-in dismissed, as a user would."""
        context = browser.new_context()
        page = context.new_page()
        page.goto(self.base + "/auth")
        page.evaluate("token => localStorage.setItem('token', token)", self.token)
        page.goto(self.base + "/")
        with_dialog = page.get_by_text("Okay, Let's Go!")
        try:
            with_dialog.click(timeout=20_000)
            page.wait_for_timeout(1000)  # its settings update goes out
        except Exception:  # no dialog this time: nothing to dismiss
            log("Open WebUI: no What's New dialog to dismiss")
        state = context.storage_state()
        context.close()
        return state

    def pages(self) -> dict[str, str]:
        return {"new chat": self.base + "/", "chat": f"{self.base}/c/{self.chat_id}"}


# --- the run -----------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="webapp-weight-"))
    report: dict[str, Any] = {
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "load": [os.getloadavg()],
        "args": {k: str(v) for k, v in vars(args).items()},
    }
    services: list[Any] = []
    try:
        ports = Ports(args.port_base)
        upstream, upstream_port = start_fast_upstream(work, ports("upstream"))
        services.append(upstream)
        convs = conversations(args.chats, args.messages)
        hearth = Hearth(work, ports)
        services.append(hearth)
        log("Hearth: hearth up (its local model)")
        report["hearth_ready_s"] = round(hearth.start(), 2)
        hearth.sign_up()
        hearth.add_chats(convs)
        systems: list[Any] = [hearth]
        if not args.no_openwebui:
            owui = OpenWebUI(work, ports, args.owui_venv / "bin" / "open-webui", upstream_port)
            services.append(owui)
            log("Open WebUI: start (offline)")
            report["openwebui_ready_s"] = round(owui.start(), 2)
            owui.sign_up()
            owui.add_chats(convs)
            report["openwebui_version"] = owui.version
            systems.append(owui)
        if not args.no_pages:
            raw = browse(
                systems, loads=args.loads, quiet=args.quiet, timeout=args.load_timeout, log=log
            )
            report["browser"] = raw.pop("browser")
            report["pages"] = {
                system: {
                    page: {mode: summarise(loads) for mode, loads in modes.items()}
                    for page, modes in pages.items()
                }
                for system, pages in raw.items()
            }
            report["raw_pages"] = raw
            report["load"].append(os.getloadavg())
        if not args.no_openwebui:
            owui.stop()  # its memory and its scheduler's polling: not beside the model
        if args.rounds:
            import _chat_titles

            log("titles: Hearth's local model")
            report["titles"] = _chat_titles.measure(
                hearth.client,
                hearth.database_url,
                rounds=args.rounds,
                max_tokens=args.max_tokens,
                log=log,
            )
            report["load"].append(os.getloadavg())
        report["finished"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        return report
    finally:
        for service in reversed(services):
            service.stop()
        if args.keep:
            print(f"logs in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--loads", type=int, default=10, help="loads per page and cache state")
    parser.add_argument("--quiet", type=float, default=1.0, help="seconds: TTI's quiet window")
    parser.add_argument("--load-timeout", type=float, default=60.0, help="seconds per load")
    parser.add_argument("--chats", type=int, default=20, help="chats each system holds")
    parser.add_argument("--messages", type=int, default=6, help="messages of the opened chat")
    parser.add_argument("--rounds", type=int, default=10, help="title rounds (3 chats each)")
    parser.add_argument("--max-tokens", type=int, default=64, help="answer length (titles)")
    parser.add_argument("--no-pages", action="store_true", help="skip the browser part")
    parser.add_argument("--no-openwebui", action="store_true")
    add_owui_venv(parser)
    add_port_base(parser)
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    parser.add_argument("--json", type=Path, help="write the raw results here")
    args = parser.parse_args()
    report = run(args)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    print(json.dumps({k: v for k, v in report.items() if k != "raw_pages"}, indent=2))
    print(render(report))


if __name__ == "__main__":
    main()
