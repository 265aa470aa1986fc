"""A manifest (``examples/knowledge/manifest.yaml``) lists files with their library and metadata."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import yaml

from knowledge.base import DocumentMeta


def read_manifest(path: Path) -> list[tuple[Path, DocumentMeta]]:
    """(file, metadata) for every entry; file paths are relative to the manifest's folder."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    out = []
    for entry in data.get("documents", []):
        when = entry.get("effective_date")
        if isinstance(when, str):
            when = date.fromisoformat(when)
        out.append(
            (
                path.parent / entry["file"],
                DocumentMeta(
                    library=entry.get("library", "policy"),
                    title=entry.get("title"),
                    issuer=entry.get("issuer"),
                    region=entry.get("region"),
                    effective_date=when,
                    products=list(entry.get("products") or []),
                ),
            )
        )
    return out
