"""The Slakh-style training corpus: the offline builder and the dataset API over it."""

from latsep.models.data.build import BuildConfig, build_corpus, split_of
from latsep.models.data.corpus import Corpus, Song, SplitAudio
from latsep.models.data.evaluation import Chunk, evaluation_chunks
from latsep.models.data.index import SPLITS, STEMS
from latsep.models.data.sampler import Crop, CropSampler

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
