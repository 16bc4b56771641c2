"""Size limits of the code: no module over 500 lines, no function over 50 lines.

Run by scripts/check; prints what passes a limit and exits 1 if anything does.
Complexity has its own checks there (ruff's C901 at 20, radon).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

MODULE_LINES = 500
FUNCTION_LINES = 50  # from the def line to the last, docstring included
PACKAGES = ("trainmon", "client/trainmon_client")


def over_limits(root: Path) -> list[str]:
    """Each module or function of the packages under ``root`` that passes its limit."""
    found: list[str] = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            name = path.relative_to(root)
            lines = text.count("\n")
            if lines > MODULE_LINES:
                found.append(f"{name}: {lines} lines (module limit {MODULE_LINES})")
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    length = (node.end_lineno or node.lineno) - node.lineno + 1
                    if length > FUNCTION_LINES:
                        found.append(
                            f"{name}:{node.lineno} {node.name}: {length} lines "
                            f"(function limit {FUNCTION_LINES})"
                        )
    return found


def main() -> int:
    found = over_limits(Path(__file__).resolve().parent.parent)
    for line in found:
        print(line)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
