"""The Slakh-style training corpus: the offline builder and the dataset API over it."""

from latsep.corpus.build import BuildConfig, build_corpus, split_of
from latsep.corpus.corpus import Corpus, Song, SplitAudio
from latsep.corpus.evaluation import Chunk, evaluation_chunks
from latsep.corpus.index import SPLITS, STEMS
from latsep.corpus.sampler import Crop, CropSampler

__all__ = [
    "SPLITS",
    "STEMS",
    "BuildConfig",
    "Chunk",
    "Corpus",
    "Crop",
    "CropSampler",
    "Song",
    "SplitAudio",
    "build_corpus",
    "evaluation_chunks",
    "split_of",
]
