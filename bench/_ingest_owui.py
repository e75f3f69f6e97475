"""Open WebUI's own ingestion, run for real (`ingest_speed.py --peer-variants openwebui`).

Open WebUI (pip `open-webui`, its own venv: ../shared/PEERS.md) starts offline with its
defaults — SQLite, Chroma, the local sentence-transformers engine with the same
all-MiniLM-L6-v2 folder, its default loaders and splitter (1000/100 characters) and its
default `RAG_EMBEDDING_BATCH_SIZE` (1). Each file goes in as its knowledge-base upload does:
`POST /api/v1/files/` (processed in the request: parse, split, embed into the file's own
collection), then `POST /api/v1/knowledge/{id}/file/add` (the file's chunks written to the
knowledge base's collection, embedded again). Files one after another.

Timed: from the first upload to the last `file/add` answer. CPU: the Open WebUI process tree
over that span (model loading and start-up excluded). Chunks and tokens are read back from
Chroma's SQLite file afterwards (tokens with the model's tokenizer, special tokens included,
cut at 256).
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from _procs import spawn, wait_ready

EMAIL, PASSWORD = "bench@example.org", "bench-password-123"
WARM_UP = b"Warm up the embedding model."

_DOCUMENTS = """
SELECT c.name, m.string_value
FROM embeddings e
JOIN segments s ON s.id = e.segment_id
JOIN collections c ON c.id = s.collection
JOIN embedding_metadata m ON m.id = e.id AND m.key = 'chroma:document'
"""


def openwebui_phase(corpus: Path, manifest: list[dict], binary: Path, port: int) -> dict:
    """Open WebUI (`binary`, its venv's `open-webui`) on `port`, ingesting the corpus."""
    from hearth.engines._minilm import reference_model_dir

    if not binary.exists():
        venv = binary.parent.parent
        raise SystemExit(
            f"{binary} not found: python3 -m venv {venv} && {venv}/bin/pip install open-webui"
            " (or give another venv with --owui-venv)"
        )
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        env = dict(os.environ) | {
            "DATA_DIR": str(data),
            "WEBUI_SECRET_KEY": "bench-secret-key-0123456789abcdef",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "OFFLINE_MODE": "true",
            "RAG_EMBEDDING_MODEL": str(reference_model_dir()),
            "ENABLE_OLLAMA_API": "false",
            "ENABLE_OPENAI_API": "false",
            "ANONYMIZED_TELEMETRY": "false",
            "DO_NOT_TRACK": "true",
            "SCARF_NO_ANALYTICS": "true",
            "GLOBAL_LOG_LEVEL": "WARNING",
        }
        args = [str(binary), "serve", "--host", "127.0.0.1", "--port", str(port)]
        service = spawn("openwebui", args, env, corpus / "openwebui.log")
        try:
            base = f"http://127.0.0.1:{port}"
            wait_ready(base + "/health", service.popen, time.monotonic(), timeout=600)
            with httpx.Client(base_url=base, timeout=1800) as client:
                token = _sign_up(client)
                client.headers["authorization"] = f"Bearer {token}"
                knowledge = client.post(
                    "/api/v1/knowledge/create", json={"name": "bench", "description": "bench"}
                )
                knowledge.raise_for_status()
                kb = knowledge.json()["id"]
                # The embedding model loads lazily on some versions: one tiny file first,
                # untimed, so the timed span holds ingestion only.
                _add(client, kb, "warm-up.txt", WARM_UP)
                cpu0 = service.cpu()
                started = time.perf_counter()
                stages = {"upload (parse, split, embed)": 0.0, "knowledge file/add": 0.0}
                for f in manifest:
                    upload, add = _add(client, kb, f["name"], (corpus / f["name"]).read_bytes())
                    stages["upload (parse, split, embed)"] += upload
                    stages["knowledge file/add"] += add
                seconds = time.perf_counter() - started
                cpu = service.cpu() - cpu0
        finally:
            service.stop()
        rows = sqlite3.connect(data / "vector_db" / "chroma.sqlite3").execute(_DOCUMENTS).fetchall()
    return _summary(rows, kb, seconds, cpu, len(manifest)) | {"stages": stages}


def _sign_up(client: httpx.Client) -> str:
    r = client.post(
        "/api/v1/auths/signup", json={"name": "Bench", "email": EMAIL, "password": PASSWORD}
    )
    r.raise_for_status()
    return r.json()["token"]


def _add(client: httpx.Client, kb: str, name: str, data: bytes) -> tuple[float, float]:
    """Upload one file, then add it to the knowledge base: the seconds of each request."""
    t0 = time.perf_counter()
    upload = client.post(
        "/api/v1/files/",
        params={"process": "true", "process_in_background": "false"},
        files={"file": (name, data)},
    )
    upload.raise_for_status()
    file_id = upload.json()["id"]
    t1 = time.perf_counter()
    added = client.post(f"/api/v1/knowledge/{kb}/file/add", json={"file_id": file_id})
    if added.status_code != 200:
        raise RuntimeError(f"Open WebUI could not add {name}: {added.status_code} {added.text}")
    return t1 - t0, time.perf_counter() - t1


def _summary(rows: list[tuple[str, str]], kb: str, seconds: float, cpu: float, files: int) -> dict:
    from hearth.rag.chunking import minilm_tokenizer

    tokenizer = minilm_tokenizer()
    # Every text embedded (the files' own collections and the knowledge base's), but the
    # untimed warm-up file.
    texts = [text for _, text in rows if text != WARM_UP.decode()]
    in_kb = [text for name, text in rows if name == kb]
    lengths = [len(e.ids) for e in tokenizer.encode_batch(texts, add_special_tokens=True)]
    result: dict[str, Any] = {
        "seconds": seconds,
        "files": files,
        "chunks": len(in_kb),
        "embedded_chunks": len(texts),
        "tokens": sum(min(n, 256) for n in lengths),
        "truncated_chunks": sum(n > 256 for n in lengths),
        "tokens_cut": sum(max(n - 256, 0) for n in lengths),
        "mean_chunk_chars": sum(map(len, in_kb)) / max(len(in_kb), 1),
        "cpu": cpu,
        "torch_threads": "its default",
    }
    return result
