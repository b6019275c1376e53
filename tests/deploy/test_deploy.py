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


def dockerfile(target: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs of one stage of ./Dockerfile (`FROM ... AS target`),
    continuation lines joined, comments dropped; the stage's FROM first."""
    text = re.sub(r"\\\n", " ", (REPO / "Dockerfile").read_text())
    stages: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, rest = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            name = rest.split()[-1] if " AS " in rest.upper() else rest
            current = stages.setdefault(name, [])
        if current is not None:
            current.append((instruction, rest.strip()))
    assert target in stages, f"no stage {target!r} in ./Dockerfile: {sorted(stages)}"
    return stages[target]


def build_args() -> dict[str, str]:
    """The Dockerfile's global ARGs (before the first FROM) with their defaults."""
    out = {}
    for line in (REPO / "Dockerfile").read_text().splitlines():
        if line.startswith("FROM"):
            break
        if line.startswith("ARG"):
            name, _, value = line[3:].strip().partition("=")
            out[name] = value
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
    assert train["profiles"] == ["train"] and train["build"]["target"] == "train"
    assert "latsep train bundle" in train["command"][0]
    for name, target in (("api", "api"), ("worker", "worker")):
        assert services[name]["build"] == {"context": ".", "target": target}
    # Trained bundles reach the worker through a volume, not a rebuild: the train service
    # writes where the worker reads, and the --out of its command lies in that volume.
    shared = {v.split(":")[1]: v.split(":")[0] for v in worker["volumes"]}
    assert shared == {"/app/artifacts": "bundles"}
    assert "bundles:/app/artifacts" in train["volumes"]
    out = shlex.split(train["command"][0].split("&&")[-1])
    assert out[out.index("--out") + 1].startswith("/app/artifacts/")
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
        exec_form(dict(dockerfile("api"))["CMD"]),
        exec_form(dict(dockerfile("worker"))["CMD"]),
        exec_form(dict(dockerfile("train"))["CMD"]),
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
    instructions = dockerfile("api")
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


def test_the_worker_image_has_what_museval_needs_and_its_bundles() -> None:
    instructions = dockerfile("worker")
    assert instructions[0] == ("FROM", "${WORKER_BASE} AS worker")
    base = build_args()["WORKER_BASE"]
    assert "pytorch/pytorch" in base and "cuda" in base
    apt = " ".join(args for ins, args in instructions if ins == "RUN" and "apt-get" in args)
    assert "ffmpeg" in apt
    assert ("STOPSIGNAL", "SIGTERM") in instructions
    # owned by the worker's user, so the bundles volume (a copy of them) is writable by training
    assert ("COPY", "--chown=latsep:latsep artifacts ./artifacts") in instructions
    env = " ".join(args for ins, args in instructions if ins == "ENV")
    assert "LATSEP_ARTIFACTS_DIR=/app/artifacts" in env


def test_the_train_image_is_the_worker_with_the_corpus_tools() -> None:
    instructions = dockerfile("train")
    assert instructions[0] == ("FROM", "worker AS train")
    apt = " ".join(args for ins, args in instructions if ins == "RUN" and "apt-get" in args)
    for package in ("fluidsynth", "fluid-soundfont-gm", "csound-soundfont", "mma"):
        assert package in apt
    assert "chown latsep:latsep /data" in apt  # where the corpus and the runs go
    assert instructions[-2:][0] == ("USER", "latsep")


def test_the_setup_script_and_the_train_image_install_the_same_soundfonts() -> None:
    setup = (REPO / "scripts" / "setup.sh").read_text()
    listed = re.search(r"APT_PACKAGES=\(([^)]*)\)", setup)
    assert listed is not None
    apt = " ".join(args for ins, args in dockerfile("train") if ins == "RUN")
    for package in listed.group(1).split():
        if "soundfont" in package or package in ("fluidsynth", "mma"):
            assert package in apt, package


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


@pytest.mark.parametrize("target", ["api", "worker", "train"])
def test_build_context_keeps_what_copy_needs_and_drops_the_venv(target: str) -> None:
    ignored = {
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".venv", ".git", "data", "runs"} <= ignored
    for instruction, args in dockerfile(target):
        if instruction == "COPY":
            *sources, _dest = (a for a in args.split() if not a.startswith("--"))
            for source in sources:
                assert source.split("/")[0] not in ignored, (target, source)
                assert (REPO / source).exists(), (target, source)
