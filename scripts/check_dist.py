"""Check a built wheel holds what users need (issue 31).

Usage: python scripts/check_dist.py dist/sectra_sdk-*.whl

Fails (exit 1, naming each problem) unless the wheel holds every package of the source tree
(each folder with ``__init__.py`` under ``sectra_*``), every ``py.typed``, the viewer's static
files and LICENSE, and no tests, caches, ``.pyc`` files or virtual environments.
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKIP = {".venv", "build", "__pycache__"}


def _source_files(pattern: str) -> list[str]:
    found = []
    for top in sorted(ROOT.glob("sectra_*")):
        for path in top.rglob(pattern):
            rel = path.relative_to(ROOT)
            if not SKIP.intersection(rel.parts):
                found.append(rel.as_posix())
    return sorted(found)


def problems(wheel: Path) -> list[str]:
    """Every way ``wheel`` differs from what the source tree says it must hold."""
    names = set(zipfile.ZipFile(wheel).namelist())
    wrong = [f"missing {name}" for name in _source_files("__init__.py") + _source_files("py.typed")
             if name not in names]
    static = [name for name in _source_files("*") if "/viewer_static/" in name and not name.endswith("/")
              and (ROOT / name).is_file()]
    wrong += [f"missing {name}" for name in static if name not in names]
    if not static:
        wrong.append("the source tree has no sectra_mock/viewer_static files (checked from the wrong folder?)")
    if not any(name.endswith(".dist-info/licenses/LICENSE") for name in names):
        wrong.append("missing LICENSE in .dist-info/licenses/")
    for name in sorted(names):
        parts = name.split("/")
        if parts[0] in {"tests", "bench", "examples", "scripts"} or "__pycache__" in parts \
                or name.endswith((".pyc", ".pyo")) or ".venv" in parts:
            wrong.append(f"unwanted {name}")
    return wrong


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not argv[0].endswith(".whl"):
        print(__doc__, file=sys.stderr)
        return 2
    wrong = problems(Path(argv[0]))
    for line in wrong:
        print(f"check_dist: {line}", file=sys.stderr)
    if not wrong:
        print(f"check_dist: {Path(argv[0]).name} holds every package, py.typed, the viewer's files and LICENSE")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
