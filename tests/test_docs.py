"""The product's citations of its model description resolve inside the repository."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "docs" / "MODEL.md"
# what ships or is read by users: code, configuration, docs, recipes, benchmarks
PRODUCT = ["otfr_vec/**/*.py", "conf/**/*.yaml", "*.md", "docs/*.md", "sweeps/*", "benchmarks/*"]


def _files():
    for pattern in PRODUCT:
        for path in ROOT.glob(pattern):
            if path.is_file() and path.suffix in (".py", ".md", ".yaml", ".sh", ".sbatch"):
                yield path


def _sections() -> set[str]:
    """Section ids of docs/MODEL.md: '2', '7a', and the numbered steps of section 2."""
    text = MODEL.read_text()
    ids = set(re.findall(r"^##+ (\d+[a-z]?)\.", text, flags=re.M))
    two = text.split("\n## 2.", 1)[1].split("\n## 3.", 1)[0]
    ids |= {f"2.{n}" for n in re.findall(r"^(\d)\. \*\*", two, flags=re.M)}
    return ids


def test_every_model_citation_names_docs_model_md_and_a_section_it_has():
    sections = _sections()
    assert {"1", "2", "2.8", "5", "6", "7a", "9"} <= sections
    cited = 0
    for path in _files():
        text = path.read_text(errors="replace")
        assert "/work/shared" not in text, path
        for m in re.finditer(r"(\S*)MODEL(\.md)?\b", text):
            if path == MODEL:
                break
            where = f"{path.relative_to(ROOT)}: {text[m.start() : m.end() + 30]!r}"
            assert m.group(1).endswith("docs/") and m.group(2), where
            cited += 1
            after = text[m.end() : m.end() + 40]
            for sec in re.findall(r"^,? ?(?:sections? )?(\d+[a-z]?(?:\.\d)?)", after):
                assert sec in sections, where
    assert cited > 10
