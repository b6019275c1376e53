"""A table file is data from outside: its members' headers are checked against the table's
shape (and the manifest's entry counts) before anything is allocated, so a crafted file is
a BundleError, never a MemoryError or a zip bomb."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

from latsep.bundle import BundleError
from latsep.bundle.tables import load_table, save_table


def _member(shape: tuple[int, ...], dtype: str, data: bytes = b"") -> bytes:
    """An .npy whose header declares `shape`, followed by `data` (none by default)."""
    out = io.BytesIO()
    header = {"descr": np.dtype(dtype).str, "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(out, header)
    return out.getvalue() + data


def _write(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, content in members.items():
            z.writestr(name, content)
    return path


def _valid_level(nnz: int) -> dict[str, bytes]:
    indices = np.zeros((3, nnz), np.uint8)
    indices[2] = np.arange(nnz)  # distinct triples (0, 0, y)
    return {
        "level0.indices.npy": _member((3, nnz), "|u1", indices.tobytes()),
        "level0.counts.npy": _member((nnz,), "|u1", np.ones(nnz, np.uint8).tobytes()),
    }


def test_header_declaring_a_huge_array_is_a_bundle_error(tmp_path: Path) -> None:
    """np.load allocates the declared shape before reading any data: a 200-byte file could
    ask for 2**44 * 8 bytes."""
    path = _write(
        tmp_path / "t.npz",
        {
            "level0.indices.npy": _member((3, 2**44), "<u8"),
            "level0.counts.npy": _member((2**44,), "<u8"),
        },
    )
    with pytest.raises(BundleError, match="entries"):
        load_table(path, (4, 4, 4), levels=1)


def test_more_entries_than_the_manifest_lists_are_refused_before_reading(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.npz", _valid_level(5))
    assert load_table(path, (16, 16, 16), levels=1, nnz=[5])[0][1].tolist() == [1] * 5
    with pytest.raises(BundleError, match="entries"):
        load_table(path, (16, 16, 16), levels=1, nnz=[4])
    for bad in ([5, 5], ["5"], [-1], [True]):
        with pytest.raises(BundleError, match="not 1 counts"):
            load_table(path, (16, 16, 16), levels=1, nnz=bad)


def test_member_size_must_agree_with_its_header(tmp_path: Path) -> None:
    """A header within bounds over less (or more) data than it declares."""
    level = _valid_level(5)
    short = {**level, "level0.counts.npy": _member((5,), "|u1", b"\x01" * 4)}
    long = {**level, "level0.counts.npy": _member((5,), "|u1", b"\x01" * 6)}
    for name, members in (("short", short), ("long", long)):
        path = _write(tmp_path / f"{name}.npz", members)
        with pytest.raises(BundleError, match="unreadable"):
            load_table(path, (16, 16, 16), levels=1)


def test_shapes_and_dtypes_are_checked_from_the_header(tmp_path: Path) -> None:
    cases = {
        "not COO": {"level0.indices.npy": _member((2, 5), "|u1", bytes(10))},
        "not integers": {"level0.indices.npy": _member((3, 5), "<f4", bytes(60))},
        "unreadable": {"level0.indices.npy": _member((3, 5), "|O")},
    }
    for message, replaced in cases.items():
        path = _write(tmp_path / "t.npz", {**_valid_level(5), **replaced})
        with pytest.raises(BundleError, match=message):
            load_table(path, (16, 16, 16), levels=1)


def test_only_the_needed_members_are_read(tmp_path: Path) -> None:
    """Members other than the asked-for levels are never opened, however large they claim
    to be."""
    members = {
        **_valid_level(5),
        "level1.indices.npy": _member((3, 2**44), "<u8"),
        "junk.npy": _member((2**44,), "<u8"),
    }
    path = _write(tmp_path / "t.npz", members)
    ((indices, counts),) = load_table(path, (16, 16, 16), levels=1)
    assert indices[2].tolist() == list(range(5)) and counts.tolist() == [1] * 5


def test_numpy_written_variants_still_load(tmp_path: Path) -> None:
    """Big-endian and Fortran-ordered members, as np.savez writes them, read back exactly."""
    indices = np.asfortranarray(np.array([[0, 1, 2], [3, 4, 5], [6, 7, 8]], ">u2"))
    counts = np.array([9, 2**40, 1], ">u8")
    path = tmp_path / "t.npz"
    with path.open("wb") as f:
        np.savez(f, **{"level0.indices": indices, "level0.counts": counts})
    ((got_indices, got_counts),) = load_table(path, (16, 16, 16), levels=1)
    assert got_indices.tolist() == indices.tolist()
    assert got_counts.tolist() == counts.tolist()


def test_memory_error_becomes_a_bundle_error(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "t.npz"
    save_table(path, [(np.zeros((3, 1), np.int64), np.ones(1, np.int64))])

    def exhausted(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr("latsep.bundle.tables.np.frombuffer", exhausted)
    with pytest.raises(BundleError, match="too large"):
        load_table(path, (4, 4, 4), levels=1)
