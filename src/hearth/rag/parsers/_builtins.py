"""The formats Hearth reads out of the box, registered through `register_parser` like any other."""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from hearth.rag.parsers.base import ParsedDocument, ParseLimits

_PACKAGE = "hearth.rag.parsers"


@dataclass(frozen=True)
class BuiltinParser:
    """A parser whose module is imported on first use: the libraries behind it take about a
    second to import, and the web process only asks which files are supported."""

    name: str
    extensions: tuple[str, ...]
    mime_types: tuple[str, ...]
    target: str  # "module:function" under hearth.rag.parsers

    def parse(self, data: bytes, filename: str, *, limits: ParseLimits) -> ParsedDocument:
        module, _, function = self.target.partition(":")
        parse = getattr(importlib.import_module(f"{_PACKAGE}.{module}"), function)
        return parse(data, filename, limits=limits)


_PROSE = (".txt", ".text", ".rst", ".log", ".adoc", ".asciidoc", ".org", ".tex")
_CODE = (
    # programming languages
    ".py", ".pyi", ".ipynb", ".js", ".mjs", ".cjs", ".jsx", ".ts", ".tsx", ".go", ".rs",
    ".java", ".kt", ".kts", ".scala", ".groovy", ".gradle", ".c", ".h", ".cc", ".cpp", ".cxx",
    ".hpp", ".hh", ".hxx", ".cs", ".fs", ".vb", ".m", ".mm", ".swift", ".rb", ".php", ".pl",
    ".pm", ".lua", ".r", ".jl", ".dart", ".ex", ".exs", ".erl", ".hrl", ".hs", ".ml", ".mli",
    ".clj", ".cljs", ".elm", ".zig", ".nim", ".v", ".sv", ".vhd", ".asm", ".s", ".f90",
    ".sol", ".vue", ".svelte",
    # shells, queries, styles, build files
    ".sh", ".bash", ".zsh", ".fish", ".ps1", ".psm1", ".bat", ".cmd", ".sql", ".graphql",
    ".gql", ".proto", ".thrift", ".css", ".scss", ".sass", ".less", ".cmake", ".mk", ".make",
    ".dockerfile", ".tf", ".tfvars", ".hcl", ".nix", ".bzl", ".diff", ".patch",
    # configuration and data
    ".json", ".jsonl", ".ndjson", ".json5", ".yaml", ".yml", ".toml", ".ini", ".cfg",
    ".conf", ".properties", ".xml", ".xsd", ".xsl", ".svg", ".plist", ".csproj", ".sln",
    ".lock",
)  # fmt: skip
_CODE_MIME_TYPES = (
    "application/json", "application/x-ndjson", "application/yaml", "application/x-yaml",
    "text/yaml", "text/x-yaml", "application/toml", "application/xml", "text/xml",
    "application/javascript", "text/javascript", "application/x-sh", "application/sql",
    "text/x-python", "text/x-script.python", "text/x-c", "text/x-c++", "text/x-java",
    "text/x-go", "text/x-rust", "text/css",
)  # fmt: skip

BUILTIN_PARSERS = (
    BuiltinParser("PDF", (".pdf",), ("application/pdf",), "_pdf:parse_pdf"),
    BuiltinParser(
        "Word document",
        (".docx",),
        ("application/vnd.openxmlformats-officedocument.wordprocessingml.document",),
        "_docx:parse_docx",
    ),
    BuiltinParser(
        "PowerPoint presentation",
        (".pptx",),
        ("application/vnd.openxmlformats-officedocument.presentationml.presentation",),
        "_pptx:parse_pptx",
    ),
    BuiltinParser(
        "Excel workbook",
        (".xlsx", ".xlsm"),
        (
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "application/vnd.ms-excel.sheet.macroenabled.12",
        ),
        "_tabular:parse_xlsx",
    ),
    BuiltinParser(
        "CSV file",
        (".csv", ".tsv"),
        ("text/csv", "text/tab-separated-values", "application/csv"),
        "_tabular:parse_csv",
    ),
    BuiltinParser(
        "HTML page",
        (".html", ".htm", ".xhtml"),
        ("text/html", "application/xhtml+xml"),
        "_html:parse_html",
    ),
    BuiltinParser(
        "Markdown file",
        (".md", ".markdown", ".mdown", ".mkd", ".mdx"),
        ("text/markdown", "text/x-markdown"),
        "_markdown:parse_markdown",
    ),
    BuiltinParser("text file", _PROSE, ("text/plain",), "_text:parse_text"),
    BuiltinParser("source file", _CODE, _CODE_MIME_TYPES, "_text:parse_code"),
)
