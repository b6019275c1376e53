"""Deployment files, checked without a Docker engine.

docker-compose.yml against the Compose Specification schema (vendored, see
COMPOSE-SPEC-LICENSE.md); the Dockerfiles parsed for their instructions; the commands the
images run executed natively; the slim API image's requirements against what the API imports.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import jsonschema
import pytest
import yaml

from latsep.settings import Settings

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
# The vendored revision declares draft 2019-09 (with a non-canonical $schema URI).
SCHEMA_VALIDATOR = jsonschema.Draft201909Validator


def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def dockerfile(name: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = (REPO / "docker" / name).read_text()
    text = re.sub(r"\\\n", " ", text)
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, rest = line.partition(" ")
            out.append((instruction.upper(), rest.strip()))
    return out


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value)
    return value


def test_compose_file_matches_the_compose_specification() -> None:
    schema = json.loads((HERE / "compose-spec.json").read_text())
    SCHEMA_VALIDATOR.check_schema(schema)
    errors = sorted(SCHEMA_VALIDATOR(schema).iter_errors(compose()), key=str)
    assert not errors, "\n".join(e.message for e in errors)


def test_the_schema_rejects_a_broken_file() -> None:
    """The validation can fail: a misspelt key and a wrong type are caught."""
    schema = json.loads((HERE / "compose-spec.json").read_text())
    validator = SCHEMA_VALIDATOR(schema)
    broken = compose()
    broken["services"]["worker"]["stop_grace_periodd"] = "30m"
    broken["services"]["api"]["ports"] = "8000:8000"
    assert len(list(validator.iter_errors(broken))) >= 2


def test_compose_services() -> None:
    services = compose()["services"]
    assert set(services) == {"redis", "api", "worker", "train"}
    redis = services["redis"]
    assert "--appendonly" in redis["command"]
    assert redis["command"][redis["command"].index("--appendonly") + 1] == "yes"
    assert any(v.split(":")[1] == "/data" for v in redis["volumes"])
    # A memory budget, and writes refused rather than uploads or stems evicted (#12.8).
    assert "--maxmemory" in redis["command"]
    policy = redis["command"][redis["command"].index("--maxmemory-policy") + 1]
    assert policy == "noeviction"
    api = services["api"]["environment"]
    assert "LATSEP_API_KEYS" in api  # it listens on 0.0.0.0: it refuses to start without
    worker = services["worker"]
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]
    assert worker["stop_signal"] == "SIGTERM"
    train = services["train"]
    assert train["profiles"] == ["train"] and train["image"] == worker["image"]
    assert "latsep train bundle" in train["command"][0]
    for name in ("api", "worker"):
        assert services[name]["environment"]["LATSEP_REDIS_URL"] == "redis://redis:6379/0"


def _seconds(duration: str) -> float:
    units = {"h": 3600, "m": 60, "s": 1}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)([hms])", duration))


def test_graceful_stop_outlasts_the_longest_job(monkeypatch: pytest.MonkeyPatch) -> None:
    services = compose()["services"]
    for key, value in services["api"]["environment"].items():
        monkeypatch.setenv(key, str(value))
    settings = Settings()  # the API's settings in compose decide each job's timeout
    longest = settings.job_timeout(settings.max_duration_seconds)
    assert _seconds(services["worker"]["stop_grace_period"]) > longest


def test_compose_and_image_commands_are_real_subcommands() -> None:
    services = compose()["services"]
    commands = [
        services["api"]["command"],
        services["worker"]["command"],
        exec_form(dict(dockerfile("Dockerfile.api"))["CMD"]),
        exec_form(dict(dockerfile("Dockerfile.worker"))["CMD"]),
    ]
    for script in services["train"]["command"][0].split("&&"):
        commands.append(shlex.split(script))
    for command in commands:
        assert command[0] == "latsep", command
        # Run what the image runs, natively, with --help: the subcommand and flags exist.
        subcommand = [a for a in command[1:] if not a.startswith("-")][:2]
        if subcommand and subcommand[0] not in ("train", "corpus"):
            subcommand = subcommand[:1]
        done = subprocess.run(
            [sys.executable, "-m", "latsep", *subcommand, "--help"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        for flag in (a for a in command[1:] if a.startswith("--")):
            assert flag in done.stdout, (flag, command)


def test_the_api_image_has_no_torch_and_covers_what_the_api_imports() -> None:
    instructions = dockerfile("Dockerfile.api")
    runs = " ".join(args for ins, args in instructions if ins == "RUN")
    assert "torch" not in runs and "pip install --no-deps ." in runs
    requirements = _requirement_names(REPO / "docker" / "requirements-api.txt")
    assert not any(r.startswith("torch") for r in requirements)
    allowed = _closure(requirements) | {"latsep"}
    baseline = _imported_modules("")  # the interpreter's own start-up (site, .pth hooks)
    imported = _imported_modules(
        "import latsep.service.app as a, latsep.cli as c; a.create_app(); c.build_parser()"
    )
    assert "torch" not in imported
    imported -= baseline
    providers = metadata.packages_distributions()
    needed = {_norm(d) for m in imported for d in providers.get(m, [])}
    missing = sorted(needed - allowed)
    assert not missing, f"the API imports modules the API image lacks: {missing}"


def test_the_worker_image_has_what_museval_and_the_corpus_need() -> None:
    instructions = dockerfile("Dockerfile.worker")
    assert instructions[0][0] in ("ARG", "FROM")
    base = next(args for ins, args in instructions if ins == "ARG" and "BASE_IMAGE" in args)
    assert "pytorch/pytorch" in base and "cuda" in base
    apt = " ".join(args for ins, args in instructions if ins == "RUN" and "apt-get" in args)
    for package in ("ffmpeg", "fluidsynth", "mma"):
        assert package in apt
    assert ("STOPSIGNAL", "SIGTERM") in instructions


def _imported_modules(code: str) -> set[str]:
    """Top-level names in sys.modules after running `code` in a fresh interpreter."""
    dump = "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    script = f"{code}\nimport sys, json\n{dump}"
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_names(path: Path) -> set[str]:
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            names.add(_norm(re.split(r"[\[<>=!~; ]", line, maxsplit=1)[0]))
    return names


def _closure(names: set[str]) -> set[str]:
    """The distributions `names` pull in (installed metadata; extras' own deps ignored)."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for req in requires:
            if "extra ==" in req:
                continue
            todo.append(_norm(re.split(r"[\[<>=!~; (]", req, maxsplit=1)[0]))
    return seen


@pytest.mark.parametrize("name", ["Dockerfile.api", "Dockerfile.worker"])
def test_build_context_keeps_what_copy_needs_and_drops_the_venv(name: str) -> None:
    ignored = {
        line.strip()
        for line in (REPO / "docker" / f"{name}.dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".venv", ".git", "data", "runs"} <= ignored
    for instruction, args in dockerfile(name):
        if instruction == "COPY":
            *sources, _dest = args.split()
            for source in sources:
                assert source.split("/")[0] not in ignored, (name, source)
                assert (REPO / source).exists(), (name, source)
