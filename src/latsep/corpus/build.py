"""Build a Slakh-style corpus offline: songs rendered with FluidSynth into aligned FLAC stems.

Songs of a split are numbered 0, 1, 2, ...; even numbers come from chorales, odd numbers
from MMA grooves, each taking the next piece of a seeded permutation of the split's pieces.
Song k depends only on (seed, split, k). Workers build songs in parallel; the main process
takes results in song order and stops once the split holds its target duration, so the
corpus is the shortest prefix of that fixed sequence: the same seed gives the same bytes
whatever the number of workers.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import shutil
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from latsep.audio import SAMPLE_RATE, write_audio
from latsep.audio.levels import active_rms, set_level, to_pcm16
from latsep.corpus.chorales import ChoraleSource, NotAChorale, chorale_catalogue, load_chorale
from latsep.corpus.corpus import CACHE_DIR
from latsep.corpus.grooves import (
    Groove,
    MmaError,
    groove_catalogue,
    nth_usable_groove,
    run_mma,
)
from latsep.corpus.index import INDEX_NAME, SPLITS, STEMS, write_index
from latsep.corpus.midi import write_midi
from latsep.corpus.recipe import (
    GM_KITS,
    Rejected,
    SongParts,
    chorale_song,
    limit_length,
    mma_song,
)
from latsep.corpus.soundfonts import drum_kits, soundfont_path
from latsep.corpus.synth import synth_for, synth_library

log = logging.getLogger(__name__)
FORMAT_VERSION = 1
MAX_SKIPPED_IN_A_ROW = 200  # a broken tool or library, not bad luck
TAIL_SECONDS = 1.0  # after the last note-off: release tails are part of the stem


@dataclass(frozen=True)
class BuildConfig:
    """What to build. `target_seconds` is audio per stem in each split."""

    target_seconds: dict[str, float]
    seed: int = 0
    soundfonts: dict[str, tuple[str, ...]] = field(
        default_factory=lambda: {
            "train": ("FluidR3_GM", "TimGM6mb"),
            "valid": ("FluidR3_GM", "TimGM6mb"),
            "test": ("MuseScore_General_Lite",),  # never heard in training
        }
    )
    split_fractions: tuple[float, float] = (0.1, 0.1)  # (valid, test) share of pieces
    mma_song_seconds: tuple[float, float] = (35.0, 75.0)
    max_song_seconds: float | None = None  # cut songs (tiny test corpora)
    stem_level_db: tuple[float, float] = (-26.0, -16.0)  # random active-RMS level per stem
    sample_rate: int = SAMPLE_RATE

    @classmethod
    def from_minutes(
        cls, minutes: float, *, seed: int = 0, heldout_fraction: float = 0.1
    ) -> BuildConfig:
        """`minutes` per stem in train; valid and test each get `heldout_fraction` of it."""
        train = 60.0 * minutes
        held = train * heldout_fraction
        return cls(target_seconds={"train": train, "valid": held, "test": held}, seed=seed)

    @classmethod
    def tiny(cls, *, seed: int = 0) -> BuildConfig:
        """A few songs of a few seconds per split: for tests."""
        return cls(
            target_seconds={"train": 8.0, "valid": 3.0, "test": 3.0},
            seed=seed,
            max_song_seconds=3.0,
            soundfonts={"train": ("TimGM6mb",), "valid": ("TimGM6mb",), "test": ("FluidR3_GM",)},
        )


@dataclass(frozen=True)
class SongTask:
    split: str
    index: int
    source: str  # "chorale" | "mma"


def split_of(piece: str, fractions: tuple[float, float]) -> str:
    """The split a piece belongs to, from a hash of its name: stable across seeds and builds."""
    digest = int.from_bytes(hashlib.sha256(piece.encode()).digest()[:8], "big")
    u = digest / 2.0**64
    valid, test = fractions
    return "test" if u < test else "valid" if u < test + valid else "train"


def build_corpus(
    config: BuildConfig,
    out: Path,
    *,
    workers: int = 1,
    overwrite: bool = False,
    progress: Callable[[str, float], None] | None = None,
) -> dict:
    """Build the corpus into `out` and return the index (also written to out/index.json).

    `progress(split, seconds)` is called as songs are accepted.
    """
    out = Path(out)
    check_tools(config)
    _prepare_output(out, overwrite)
    context = multiprocessing.get_context("spawn") if workers > 1 else None
    pool = context.Pool(workers) if context else None
    try:
        songs = _build_songs(config, out, pool, workers, progress)
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
    index = {
        "format": "latsep-corpus",
        "version": FORMAT_VERSION,
        "sample_rate": config.sample_rate,
        "stems": list(STEMS),
        "seed": config.seed,
        "config": _jsonable(asdict(config)),
        "splits": {
            split: {
                "songs": sum(s["split"] == split for s in songs),
                "seconds": round(
                    sum(s["num_samples"] for s in songs if s["split"] == split)
                    / config.sample_rate,
                    3,
                ),
                "soundfonts": list(config.soundfonts.get(split, ())),
            }
            for split in SPLITS
        },
        "songs": songs,
    }
    write_index(out, index)
    return index


def check_tools(config: BuildConfig) -> None:
    """Fail early, naming what to install, instead of skipping every song for want of a tool."""
    for names in config.soundfonts.values():
        for name in names:
            soundfont_path(name)
    synth_library()
    catalogue = groove_catalogue()
    if not catalogue:
        raise MmaError("the MMA library holds no grooves")
    try:
        run_mma(catalogue[0], ["C"], 120, 0)
    except MmaError as exc:
        raise MmaError(
            f"{exc} (if MMA reports a missing groove database, run `mma -G` as root)"
        ) from exc


def _build_songs(config, out, pool, workers, progress) -> list[dict]:
    """Songs of every split, each split the shortest prefix of its sequence reaching the target.

    Tasks are submitted split after split, a few ahead of the results being read; songs that
    finish after their split is full are deleted. Reading results in submission order keeps
    the outcome independent of worker timing.
    """
    splits = [s for s in SPLITS if config.target_seconds.get(s, 0.0) > 0]
    tasks = {split: _tasks(split) for split in splits}
    totals = dict.fromkeys(splits, 0.0)
    skipped = dict.fromkeys(splits, 0)  # songs in a row that gave nothing
    accepted: list[dict] = []
    extras: list[dict] = []
    pending: deque = deque()  # (split, result) in submission order
    submitting = 0  # index into splits of the split being submitted
    while True:
        while len(pending) < 2 * workers and submitting < len(splits):
            split = splits[submitting]
            if totals[split] >= config.target_seconds[split]:
                submitting += 1
                continue
            args = (config, str(out), next(tasks[split]))
            pending.append(
                (
                    split,
                    pool.apply_async(build_song, args) if pool else _Immediate(build_song, args),
                )
            )
        if not pending:
            break
        split, result = pending.popleft()
        entry = result.get()
        if entry is None:
            skipped[split] += 1
            if skipped[split] > MAX_SKIPPED_IN_A_ROW:
                raise RuntimeError(f"{skipped[split]} songs of split {split} in a row gave no song")
            continue
        skipped[split] = 0
        if totals[split] >= config.target_seconds[split]:
            extras.append(entry)  # built past the target: not part of the corpus
            continue
        accepted.append(entry)
        seconds = entry["num_samples"] / config.sample_rate
        totals[split] += seconds
        if progress is not None:
            progress(split, seconds)
    for entry in extras:
        shutil.rmtree(out / entry["path"], ignore_errors=True)
    return accepted


def _tasks(split: str) -> Iterator[SongTask]:
    index = 0
    while True:
        yield SongTask(split, index, "chorale" if index % 2 == 0 else "mma")
        index += 1


def build_song(config: BuildConfig, out: str, task: SongTask) -> dict | None:
    """Make song `task.index` of its split; None when its piece cannot give a song."""
    rng = np.random.default_rng([config.seed, SPLITS.index(task.split), task.index])
    chorales, grooves = _pieces(config, task.split)
    soundfont = config.soundfonts[task.split][int(rng.integers(len(config.soundfonts[task.split])))]
    sf_path = soundfont_path(soundfont)
    kits = tuple(k for k in drum_kits(sf_path) if k in GM_KITS)
    turn = task.index // 2
    try:
        if task.source == "chorale":
            source = chorales[turn % len(chorales)]
            song = chorale_song(load_chorale(source), grooves, kits, rng)
            piece = source.piece
        else:
            groove = nth_usable_groove(grooves, turn)
            if groove is None:
                raise Rejected("no groove of this split has drums, bass and accompaniment")
            song = mma_song(
                groove, kits, rng, song_seconds=float(rng.uniform(*config.mma_song_seconds))
            )
            piece = groove.piece
    except (Rejected, NotAChorale, MmaError) as exc:
        log.debug("song %s/%d skipped: %s", task.split, task.index, exc)
        return None
    return _render_song(config, Path(out), task, song, piece, soundfont, sf_path, rng)


def _render_song(config, out, task, song: SongParts, piece, soundfont, sf_path, rng) -> dict | None:
    seconds_per_tick = song.tempo / 1e6 / song.ticks_per_beat
    if config.max_song_seconds is not None:
        song = limit_length(song, int(config.max_song_seconds / seconds_per_tick))
    end_tick = song.end_tick + round(TAIL_SECONDS / seconds_per_tick)
    num_samples = round(end_tick * seconds_per_tick * config.sample_rate)
    song_id = f"{task.split}-{task.index:05d}"
    rel = Path(task.split) / song_id
    stems, gains, levels, midis = {}, {}, {}, {}
    synth = synth_for(sf_path, config.sample_rate)
    for stem in STEMS:
        midis[stem] = write_midi(song.stems[stem], song.tempo, end_tick, song.ticks_per_beat)
        audio = synth.render(song.stems[stem], seconds_per_tick, num_samples)  # (L,)
        if active_rms(audio) <= 0.0:
            log.debug("song %s skipped: %s is silent with %s", song_id, stem, soundfont)
            return None
        stems[stem], gains[stem] = set_level(audio, float(rng.uniform(*config.stem_level_db)))
    (out / rel).mkdir(parents=True, exist_ok=True)
    for stem, midi in midis.items():  # the score of each stem, as Slakh ships it
        (out / rel / f"{stem}.mid").write_bytes(midi)
    for stem, audio in stems.items():
        pcm = to_pcm16(audio)
        write_audio(
            out / rel / f"{stem}.flac", pcm, config.sample_rate, format="flac", subtype="PCM_16"
        )
        levels[stem] = _rms_db(pcm)
    return {
        "song_id": song_id,
        "split": task.split,
        "piece": piece,
        "path": rel.as_posix(),
        "num_samples": num_samples,
        "seconds": round(num_samples / config.sample_rate, 3),
        "soundfont": soundfont,
        **song.meta,
        "gain_db": {s: round(g, 3) for s, g in gains.items()},
        "rms_db": levels,
    }


def _rms_db(pcm: np.ndarray) -> float:
    rms = float(np.sqrt(np.mean((pcm.astype(np.float64) / 32768.0) ** 2)))
    return round(float(20.0 * np.log10(max(rms, 1e-10))), 3)


_PIECES: dict[tuple, tuple] = {}


def _pieces(config: BuildConfig, split: str) -> tuple[list[ChoraleSource], list[Groove]]:
    """The split's chorales and grooves, each in a seeded order (cached per process)."""
    key = (config.seed, split, config.split_fractions)
    if key not in _PIECES:
        rng = np.random.default_rng([config.seed, SPLITS.index(split), 2**31])
        chorales = [
            c for c in chorale_catalogue() if split_of(c.piece, config.split_fractions) == split
        ]
        grooves = [
            g for g in groove_catalogue() if split_of(g.piece, config.split_fractions) == split
        ]
        _PIECES[key] = (
            [chorales[i] for i in rng.permutation(len(chorales))],
            [grooves[i] for i in rng.permutation(len(grooves))],
        )
    return _PIECES[key]


def _prepare_output(out: Path, overwrite: bool) -> None:
    if (out / INDEX_NAME).exists() or any((out / split).exists() for split in SPLITS):
        if not overwrite:
            raise FileExistsError(
                f"{out} already holds a corpus; pass overwrite=True (--overwrite) to replace it"
            )
        (out / INDEX_NAME).unlink(missing_ok=True)
        for folder in (*SPLITS, CACHE_DIR):
            shutil.rmtree(out / folder, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)


class _Immediate:
    """Runs the call now; quacks like AsyncResult for the single-process path."""

    def __init__(self, func, args) -> None:
        self._value = func(*args)

    def get(self):
        return self._value


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value
