"""Loading one web page in Debian's chromium (driven by Playwright, launched as the browser
tests launch it) and measuring it the same way whatever the application: what it
transferred and decoded per resource type, and when it became interactive.

Definitions (the report repeats them):
- **Bytes** come from the browser's Resource Timing entries (the navigation entry for the
  document, one resource entry per sub-resource, API calls included): `transferSize`
  (bytes over the wire, headers included; 0 when the HTTP cache answered without asking,
  a few hundred bytes for a 304 revalidation) and `decodedBodySize` (the body after
  decompression). WebSocket traffic is not a resource and is not counted. The type is
  the response's MIME type (`contentType`), else how it was requested (`initiatorType`):
  document, script, stylesheet, font, image, other (API calls, manifests, ...).
- **Message box editable**: the first animation frame at which the page's message box
  (a selector per application) is rendered, visible, not disabled, not read-only, not
  inside an `inert` subtree, and editable (a textarea, or `contenteditable`); in
  milliseconds from navigation start (`performance.timeOrigin`).
- **Interactive (TTI)**: the latest of the message box editable, `DOMContentLoaded` and
  `load` having run, the end of the last network response, and the end of the last long
  task (over 50 ms of main thread), such that a quiet window follows it: `quiet`
  seconds with no HTTP request waiting for its response, no response ending and no long
  task. Like Lighthouse's TTI, with a
  shorter window and no in-flight allowance (a page that polls never becomes quiet; it is
  reported as not settled within the timeout).

Playwright and chromium come with the dev extra and Debian; this module imports
Playwright only where it is used, so that a benchmark's `--help` works without them.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from _procs import pct

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext

CHROMIUM = os.environ.get("HEARTH_TEST_CHROMIUM", "/usr/bin/chromium")
# As tests/web/conftest.py launches it: Debian's chromium, never a downloaded browser.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TYPES = ("document", "script", "stylesheet", "font", "image", "other")

# Installed in every page before its own scripts run.
_INSTRUMENT = """
(() => {
  if (window !== window.top || window.__load) return;
  const s = (window.__load = { ready: null, longEnd: 0, longTasks: 0, longMs: 0, resEnd: 0 });
  try { performance.setResourceTimingBufferSize(100000); } catch (e) {}
  try {
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        s.longEnd = Math.max(s.longEnd, e.startTime + e.duration);
        s.longTasks += 1;
        s.longMs += e.duration;
      }
    }).observe({ type: "longtask", buffered: true });
  } catch (e) {}
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) s.resEnd = Math.max(s.resEnd, e.responseEnd);
  }).observe({ type: "resource", buffered: true });
  const selector = SELECTOR;
  const editable = (el) => {
    if (el.closest("[inert]") || el.matches(":disabled")) return false;
    if (!el.getClientRects().length || getComputedStyle(el).visibility === "hidden") return false;
    if (el.tagName === "TEXTAREA" || el.tagName === "INPUT") return !el.readOnly;
    return el.isContentEditable;
  };
  const tick = () => {
    if (s.ready !== null) return;
    for (const el of document.querySelectorAll(selector)) {
      if (editable(el)) { s.ready = performance.now(); return; }
    }
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
})();
"""

_STATE = """() => ({
  ...window.__load,
  now: performance.now(),
  complete: document.readyState === "complete",
})"""

_COLLECT = """() => {
  const nav = performance.getEntriesByType("navigation")[0];
  const fcp = performance.getEntriesByName("first-contentful-paint")[0];
  const entry = (e) => ({
    name: e.name, initiator: e.initiatorType, mime: e.contentType || "",
    transfer: e.transferSize, encoded: e.encodedBodySize, decoded: e.decodedBodySize,
    end: e.responseEnd, status: e.responseStatus || 0,
  });
  return {
    state: window.__load,
    document: { ...entry(nav), mime: "text/html" },
    resources: performance.getEntriesByType("resource").map(entry),
    dcl: nav.domContentLoadedEventEnd,
    load: nav.loadEventEnd,
    fcp: fcp ? fcp.startTime : null,
  };
}"""


def resource_type(entry: dict[str, Any]) -> str:
    mime, initiator = entry["mime"].lower(), entry["initiator"]
    name = entry["name"].split("?")[0].lower()
    if "javascript" in mime or "ecmascript" in mime:
        return "script"
    if mime == "text/css":
        return "stylesheet"
    if mime.startswith("font/") or "font" in mime or name.endswith((".woff2", ".woff", ".ttf")):
        return "font"
    if mime.startswith("image/"):
        return "image"
    if mime == "text/html" and initiator in ("iframe", "frame"):
        return "document"
    if not mime and initiator == "script":
        return "script"
    if not mime and initiator in ("img", "image"):
        return "image"
    return "other"


@dataclass
class Load:
    """One page load: times in ms from navigation start; bytes per resource type."""

    url: str
    settled: bool
    ready_ms: float | None  # message box editable
    tti_ms: float | None
    dcl_ms: float
    load_ms: float
    fcp_ms: float | None
    long_tasks: int
    long_task_ms: float
    # type -> [requests, transferred bytes, decoded bytes, from cache (transfer 0),
    # revalidated (transfer > 0 but under the body: a 304)]
    by_type: dict[str, list[int]] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)  # requests that failed (URL: why)
    resources: list[dict[str, Any]] = field(default_factory=list)


def _tally(entries: list[dict[str, Any]]) -> dict[str, list[int]]:
    out = {kind: [0, 0, 0, 0, 0] for kind in TYPES}
    for n, e in enumerate(entries):
        row = out["document" if n == 0 else resource_type(e)]
        row[0] += 1
        row[1] += e["transfer"]
        row[2] += e["decoded"]
        if e["transfer"] == 0 and e["decoded"] > 0:
            row[3] += 1
        elif 0 < e["transfer"] < e["encoded"]:
            row[4] += 1
    return out


def launch(playwright: Any) -> Browser:
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def new_context(browser: Browser, storage_state: dict, selector: str) -> BrowserContext:
    """A browser context (its own cookies, storage and an empty HTTP cache), signed in
    through `storage_state`, every page of it instrumented for `selector`."""
    context = browser.new_context(
        storage_state=storage_state, viewport={"width": 1280, "height": 800}
    )
    context.add_init_script(_INSTRUMENT.replace("SELECTOR", json.dumps(selector)))
    return context


def load(context: BrowserContext, url: str, *, quiet: float, timeout: float) -> Load:
    """Open `url` in a new page of `context`, wait until it is interactive (or `timeout`
    seconds), measure it and close the page."""
    page = context.new_page()
    in_flight: set[Any] = set()
    failed: list[str] = []
    last_net = [time.monotonic()]

    def started(request: Any) -> None:
        in_flight.add(request)
        last_net[0] = time.monotonic()

    def ended(request: Any) -> None:
        in_flight.discard(request)
        last_net[0] = time.monotonic()

    def answered(response: Any) -> None:
        ended(response.request)

    def failure(request: Any) -> None:
        failed.append(f"{request.url}: {request.failure}")
        ended(request)

    page.on("request", started)
    # Answered (headers received), not finished: a body the page never reads (Open
    # WebUI's timezone POST) never finishes in Playwright's eyes; bodies that are read end
    # in the resource entries' `responseEnd`, which the quiet window also waits for.
    page.on("response", answered)
    page.on("requestfinished", ended)
    page.on("requestfailed", failure)
    try:
        page.goto(url, wait_until="commit")
        deadline = time.monotonic() + timeout
        settled = False
        while time.monotonic() < deadline:
            page.wait_for_timeout(50)  # also lets Playwright deliver the network events
            s = page.evaluate(_STATE)
            if s["ready"] is None or not s["complete"] or in_flight:
                continue
            last = max(s["ready"], s["longEnd"], s["resEnd"])
            if s["now"] - last >= quiet * 1000 and time.monotonic() - last_net[0] >= quiet:
                settled = True
                break
        got = page.evaluate(_COLLECT)
    finally:
        page.close()
    state = got["state"]
    ready = state["ready"]
    tti = None
    if settled:
        tti = max(ready, got["dcl"], got["load"], state["resEnd"], state["longEnd"])
    entries = [got["document"], *got["resources"]]
    return Load(
        url=url,
        settled=settled,
        ready_ms=ready,
        tti_ms=tti,
        dcl_ms=got["dcl"],
        load_ms=got["load"],
        fcp_ms=got["fcp"],
        long_tasks=state["longTasks"],
        long_task_ms=state["longMs"],
        by_type=_tally(entries),
        failed=failed,
        resources=entries,
    )


def browse(
    systems: list[Any], *, loads: int, quiet: float, timeout: float, log: Any = print
) -> dict[str, Any]:
    """Every page of every system (each with `name`, `box`, `pages()` and
    `storage_state(browser)`), `loads` times with an empty HTTP cache, then `loads` times
    with a cache filled by one load before, the systems' loads interleaved; the loads as
    they went, by system, page and cache state."""
    from playwright.sync_api import sync_playwright

    out: dict[str, Any] = {}
    with sync_playwright() as p:
        browser = launch(p)
        out["browser"] = browser.version
        states = {s.name: s.storage_state(browser) for s in systems}
        targets = [(s, page, url) for s in systems for page, url in s.pages().items()]

        def record(mode: str, system: Any, page: str, got: Any) -> None:
            runs = out.setdefault(system.name, {}).setdefault(page, {}).setdefault(mode, [])
            runs.append(
                {k: v for k, v in vars(got).items() if k != "resources"}
                | {"resources": got.resources if len(runs) == 0 else None}
            )

        for n in range(loads):
            for system, page, url in targets:
                context = new_context(browser, states[system.name], system.box)
                got = load(context, url, quiet=quiet, timeout=timeout)
                context.close()
                record("cold", system, page, got)
            log(f"pages: cold load {n + 1}/{loads}")
        contexts = {}
        for system, _page, url in targets:
            contexts[url] = new_context(browser, states[system.name], system.box)
            load(contexts[url], url, quiet=quiet, timeout=timeout)  # fills it
        for n in range(loads):
            for system, page, url in targets:
                got = load(contexts[url], url, quiet=quiet, timeout=timeout)
                record("warm", system, page, got)
            log(f"pages: warm load {n + 1}/{loads}")
        for context in contexts.values():
            context.close()
        browser.close()
    return out


def summarise(loads: list[dict]) -> dict[str, Any]:
    """Medians per resource type; p50/p95 of the times; how many settled."""

    def times(key: str) -> dict[str, float | None]:
        values = [x[key] for x in loads if x[key] is not None]
        return {
            "p50_ms": round(pct(values, 50)) if values else None,
            "p95_ms": round(pct(values, 95)) if values else None,
        }

    by_type = {}
    for kind in (*TYPES, "total"):
        rows = [
            x["by_type"][kind]
            if kind != "total"
            else [sum(c) for c in zip(*x["by_type"].values(), strict=True)]
            for x in loads
        ]
        by_type[kind] = [round(pct([r[i] for r in rows], 50)) for i in range(5)]
    return {
        "loads": len(loads),
        "settled": sum(x["settled"] for x in loads),
        "ready": times("ready_ms"),
        "tti": times("tti_ms"),
        "dcl": times("dcl_ms"),
        "fcp": times("fcp_ms"),
        "long_task_ms": round(pct([x["long_task_ms"] for x in loads], 50)),
        "by_type": by_type,
        "failed": sorted({f for x in loads for f in x["failed"]})[:10],
    }
