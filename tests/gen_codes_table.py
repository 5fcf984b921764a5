"""Writes the table of diagnostic codes into README.md, between the codes markers.

    python tests/gen_codes_table.py          # rewrite the table
    python tests/gen_codes_table.py --check  # exit 1 when the table is stale

tests/test_codes.py fails when the README's table differs from `render_table()`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from flowlord.compiler import codes

README = Path(__file__).resolve().parents[1] / "README.md"
START = "<!-- codes:start -->"
END = "<!-- codes:end -->"


def render_table() -> str:
    """The Markdown table of every registered code, in id order."""
    lines = ["| code | name | severity | summary |", "|---|---|---|---|"]
    for code in sorted(codes.REGISTRY.values(), key=lambda c: c.id):
        summary = code.summary.replace("|", "\\|")
        lines.append(f"| {code.id} | `{code.name}` | {code.severity.value} | {summary} |")
    return "\n".join(lines) + "\n"


def current_table(text: str) -> str:
    """The text between the markers; ValueError when they are missing or out of order."""
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"README.md has no `{START}` ... `{END}` block")
    return text[start + len(START) : end].strip("\n") + "\n"


def updated(text: str) -> str:
    """`text` with the block between the markers replaced by the current table."""
    current_table(text)  # validates the markers
    start = text.find(START) + len(START)
    end = text.find(END)
    return text[:start] + "\n" + render_table() + text[end:]


def main(argv: list[str]) -> int:
    text = README.read_text(encoding="utf-8")
    if "--check" in argv:
        if current_table(text) != render_table():
            print("README.md codes table is stale: run python tests/gen_codes_table.py", file=sys.stderr)
            return 1
        return 0
    new = updated(text)
    if new != text:
        README.write_text(new, encoding="utf-8")
        print("updated the codes table in README.md")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
