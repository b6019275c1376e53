"""Imports go one way: service/ → jobs/ (Redis) ← worker/ → bundle/ → models/; audio/,
corpus/, training/ and evaluation/ beside them.

The API and the workers meet only through Redis, whose schema lives in `latsep.jobs`; the API
image has no torch. The checker reads every import statement of the source with `ast`, those
inside functions included (the lazy ones), so nothing has to be imported to be checked.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import latsep

SOURCE_ROOT = Path(latsep.__file__).resolve().parent.parent  # the folder that holds latsep/

# A web framework, a queue, settings or command-line parsing: what the offline parts never need.
OUTSIDE_SCIENCE = ("fastapi", "rq", "redis", "pydantic_settings", "argparse")
# Per package of latsep, the modules it must never import (a name covers its submodules).
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "worker": ("latsep.service",),
    "service": ("latsep.worker", "latsep.models", "torch"),
    "jobs": ("latsep.service", "latsep.worker", "latsep.models", "torch"),
    # Upload checks and audio I/O: shared by the API and the science, so neither side's.
    "audio": ("latsep.service", "latsep.worker", "latsep.jobs", "latsep.models", "torch"),
    # The science runs in a notebook or a training job as well as in the worker: no web
    # framework, queue, settings or command-line parsing in it.
    "models": (
        "latsep.service",
        "latsep.worker",
        "latsep.jobs",
        "latsep.bundle",
        "latsep.corpus",
        "latsep.training",
        "latsep.evaluation",
        *OUTSIDE_SCIENCE,
    ),
    # Beside the science, built on it: the bundle format, the corpus builder, training and
    # the benchmark run offline as well as in the worker, so none of them reaches the
    # service side either; the corpus builder needs no model at all.
    "bundle": ("latsep.service", "latsep.worker", "latsep.jobs", *OUTSIDE_SCIENCE),
    "corpus": (
        "latsep.service",
        "latsep.worker",
        "latsep.jobs",
        "latsep.models",
        "torch",
        *OUTSIDE_SCIENCE,
    ),
    "training": ("latsep.service", "latsep.worker", "latsep.jobs", *OUTSIDE_SCIENCE),
    "evaluation": ("latsep.service", "latsep.worker", "latsep.jobs", *OUTSIDE_SCIENCE),
}


def imported_names(tree: ast.Module, package: str) -> Iterator[tuple[int, str]]:
    """(line, dotted name) of everything a module imports; `package` resolves relative imports.

    `from a import b` yields both `a` and `a.b`, since `b` may be a submodule
    (`from latsep import service`).
    """
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = parts[: len(parts) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            yield node.lineno, module
            for alias in node.names:
                yield node.lineno, f"{module}.{alias.name}"


def _covers(forbidden: str, name: str) -> bool:
    return name == forbidden or name.startswith(forbidden + ".")


def violations(source_root: Path) -> list[str]:
    """`path:line imports name` for every import statement under source_root that breaks
    FORBIDDEN."""
    found: dict[tuple[Path, int, str], str] = {}  # one report per statement and rule
    for top, forbidden in FORBIDDEN.items():
        for path in sorted((source_root / "latsep" / top).rglob("*.py")):
            relative = path.relative_to(source_root)
            package = ".".join(relative.parent.parts)  # __init__.py is its own package: same
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for line, name in imported_names(tree, package):
                for rule in forbidden:
                    if _covers(rule, name):
                        found.setdefault((relative, line, rule), name)
    return [f"{path}:{line} imports {name}" for (path, line, _), name in sorted(found.items())]


def test_the_source_imports_one_way() -> None:
    assert (SOURCE_ROOT / "latsep" / "jobs").is_dir()  # the walk found the real tree
    assert violations(SOURCE_ROOT) == []


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "latsep" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


# Each planted file breaks exactly one rule, in one of the ways an import can be spelled.
PLANTED = {
    "worker imports service": ("worker/a.py", "from latsep.service.store import JobStore\n"),
    "worker imports service, package form": ("worker/b.py", "from latsep import service\n"),
    "worker imports service, relative": ("worker/sub/c.py", "from ...service import app\n"),
    "service imports worker": ("service/a.py", "import latsep.worker.jobs\n"),
    "service imports torch, lazily": ("service/b.py", "def f():\n    import torch.nn\n"),
    "service imports the science": ("service/c.py", "from latsep.models.codec import Codec\n"),
    "jobs imports the science": ("jobs/c.py", "import latsep.models\n"),
    "audio imports torch": ("audio/a.py", "import torch\n"),
    "audio imports the science": ("audio/b.py", "from latsep.models.metrics import si_sdr\n"),
    "jobs imports torch": ("jobs/__init__.py", "import torch\n"),
    "jobs imports service": ("jobs/a.py", "from latsep.service import views\n"),
    "jobs imports worker, relative": ("jobs/b.py", "from ..worker.engine import Engine\n"),
    "models imports jobs": ("models/a.py", "from latsep.jobs import SeparationOptions\n"),
    "models imports service": ("models/sub/b.py", "import latsep.service\n"),
    "models imports fastapi": ("models/c.py", "from fastapi import FastAPI\n"),
    "models imports redis, lazily": ("models/d.py", "def f():\n    import redis\n"),
    "models parses a command line": ("models/e.py", "import argparse\n"),
    "models imports the bundle format": ("models/f.py", "from latsep.bundle import Bundle\n"),
    "corpus imports torch": ("corpus/a.py", "import torch\n"),
    "training imports the service": ("training/a.py", "import latsep.service.app\n"),
    "evaluation reads settings": ("evaluation/a.py", "from pydantic_settings import X\n"),
}


@pytest.mark.parametrize("case", sorted(PLANTED))
def test_a_planted_import_is_reported(tmp_path: Path, case: str) -> None:
    name, text = PLANTED[case]
    found = violations(_tree(tmp_path, {name: text}))
    assert len(found) == 1 and found[0].startswith(f"latsep/{name}:"), found


def test_the_allowed_directions_pass(tmp_path: Path) -> None:
    allowed = {
        "service/a.py": "from latsep.jobs import JobStore\nimport soundfile\n",
        "service/c.py": "from latsep.audio import AudioError\nfrom latsep import methods\n",
        "audio/a.py": "import soxr\nfrom latsep.audio.errors import AudioError\n",
        "service/b.py": "from . import a\nfrom .a import JobStore\nimport torchlike\n",
        "worker/a.py": "import torch\nfrom latsep import jobs, models\n",
        "worker/b.py": "from latsep.models.codec import Codec\nimport latsep.service_notes\n",
        "jobs/a.py": "from redis import Redis\nfrom latsep.jobs.b import x\n",
        "models/a.py": "import torch\nfrom latsep.models.b import y\n",
        "cli/serve.py": "from latsep.service.app import create_app\n",  # the CLI may start both
    }
    assert violations(_tree(tmp_path, allowed)) == []


def test_relative_imports_resolve_against_their_package() -> None:
    tree = ast.parse("from . import a\nfrom ..b import c\nfrom ... import d\n")
    names = [name for _, name in imported_names(tree, "latsep.worker.sub")]
    assert names == [
        "latsep.worker.sub",
        "latsep.worker.sub.a",
        "latsep.worker.b",
        "latsep.worker.b.c",
        "latsep",
        "latsep.d",
    ]
