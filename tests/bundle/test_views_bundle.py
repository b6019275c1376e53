"""Band views in a bundle: added in place, loaded in any source order, refused when broken."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from test_bundle import SOURCES, K, make_bundle

from latsep.bundle import BundleError, add_views, load_bundle
from latsep.models.separation.views import ViewFilter

LOW = {"filter": "lowpass", "cutoff_hz": [200.0], "order": 4, "weight": 0.5}


def _view_counts(seed: int = 0):
    """(indices [i, z_i, v] (3, nnz), counts (nnz,)) over the three sources."""
    rng = np.random.default_rng(seed)
    indices = np.stack([rng.integers(0, 3, 200), rng.integers(0, K, 200), rng.integers(0, K, 200)])
    return indices, rng.integers(1, 9, 200)


@pytest.fixture
def viewed(tmp_path: Path) -> Path:
    path = make_bundle(tmp_path / "plain")
    add_views(path, {"view-low:bass+drums+other": [_view_counts()]}, {"low": LOW})
    return path


def test_added_views_load_in_the_requested_order(viewed: Path) -> None:
    bundle = load_bundle(viewed, device="cpu")
    (view,) = bundle.views("mlass-pe", SOURCES)
    assert view.name == "low" and view.weight == 0.5
    assert view.filter == ViewFilter("lowpass", (200.0,), 4)
    indices, counts = _view_counts()
    dense = np.zeros((3, K, K))
    np.add.at(dense, tuple(indices), counts)
    s = bundle.default_smoothing
    expected = (dense + s) / (dense.sum(2, keepdims=True) + K * s)  # p(v | z_i), normalised over v
    columns = view.table.columns(torch.arange(K))  # (V, N, K) [v, i, z]
    np.testing.assert_allclose(columns.permute(1, 2, 0).numpy(), expected)
    # another order of the same sources: the rows follow it
    (swapped,) = bundle.views("mlass-pe", ("other", "bass", "drums"))
    np.testing.assert_allclose(
        swapped.table.columns(torch.arange(K)).permute(1, 2, 0).numpy(), expected[[2, 0, 1]]
    )
    assert bundle.views("mlass-pe", ("bass", "drums")) == ()  # counted for the three only
    assert bundle.likelihood("mlass-pe", SOURCES).num_sources == 3  # the rest is untouched


def test_adding_again_replaces_the_table_and_keeps_the_bundle_valid(viewed: Path) -> None:
    heavier = {**LOW, "weight": 2.0}
    add_views(viewed, {"view-low:bass+drums+other": [_view_counts(seed=1)]}, {"low": heavier})
    manifest = json.loads((viewed / "manifest.json").read_text())
    assert manifest["likelihood"]["views"]["low"]["weight"] == 2.0
    assert manifest["tables"]["view-low:bass+drums+other"]["total"] == [
        int(_view_counts(seed=1)[1].sum())
    ]
    (view,) = load_bundle(viewed, device="cpu").views("mlass-pe", SOURCES)
    assert view.weight == 2.0


@pytest.mark.parametrize(
    ("tables", "views", "message"),
    [
        ({"lass:bass+drums": [_view_counts()]}, {"low": LOW}, "not a table of the views"),
        ({"view-high:bass+drums+other": [_view_counts()]}, {"low": LOW}, "not a table"),
        ({"view-low:bass+drums+other": [_view_counts()]}, {"low": {**LOW, "weight": 0}}, "weight"),
        ({"view-low:bass+drums+other": [_view_counts()]}, {"low": {**LOW, "order": 9}}, "order"),
        ({"view-low:bass+drums+piano": [_view_counts()]}, {"low": LOW}, "lacks"),
        ({"view-low:drums+bass+other": [_view_counts()]}, {"low": LOW}, "bundle's order"),
        ({"view-low:bass+drums": [_view_counts()]}, {"low": LOW}, "three or more"),
        ({"view-low:bass+drums+other": [_view_counts()] * 2}, {"low": LOW}, "one level"),
        ({"view-low:bass+drums+other": [(np.array([[3], [0], [0]]), np.array([1]))]},
         {"low": LOW}, "outside"),
        ({}, {"low": LOW}, "have no table"),
        ({"view-low:bass+drums+other": [_view_counts()]}, {"lo-w": LOW}, "letters"),
        ({"view-low:bass+drums+other": [_view_counts()]}, {"low": {**LOW, "weight": 5}}, "4"),
        ({"view-low:bass+drums+other": [_view_counts()]},
         {"low": {**LOW, "cutoff_hz": [11025]}}, "Nyquist"),
        ({"view-low:bass+drums+other": [_view_counts()]}, {"low": {**LOW, "part": "x"}}, "part"),
        ({"view-low:bass+drums+other": [_view_counts()]},
         {"low": {**LOW, "filter": "full"}}, "0 cutoff"),
    ],
)  # fmt: skip
def test_bad_views_are_refused_before_the_manifest_changes(tmp_path, tables, views, message):
    path = make_bundle(tmp_path / "plain")
    before = (path / "manifest.json").read_text()
    with pytest.raises(ValueError, match=message):
        add_views(path, tables, views)
    assert (path / "manifest.json").read_text() == before
    assert not list((path / "tables").glob(".*"))  # no staging file left behind
    load_bundle(path, device="cpu")  # and the bundle as it was


def test_a_second_order_of_the_same_sources_is_refused_at_load(viewed: Path) -> None:
    """Two tables of one view over one set of sources would apply the view twice."""
    import shutil

    shutil.copy(
        viewed / "tables" / "view-low-bass+drums+other.npz",
        viewed / "tables" / "view-low-drums+bass+other.npz",
    )

    def twice(m):
        entry = m["tables"]["view-low:bass+drums+other"]
        m["tables"]["view-low:drums+bass+other"] = {
            **entry,
            "file": "tables/view-low-drums+bass+other.npz",
        }
        m["files"]["tables/view-low-drums+bass+other.npz"] = m["files"][entry["file"]]

    _edit(viewed, twice)
    with pytest.raises(BundleError, match="two tables"):
        load_bundle(viewed, device="cpu")


def test_a_new_filter_drops_the_tables_counted_with_the_old_one(viewed: Path) -> None:
    narrower = {**LOW, "cutoff_hz": [150.0]}
    with pytest.raises(ValueError, match="have no table"):  # its old counts are not its own
        add_views(viewed, {}, {"low": narrower})
    add_views(viewed, {"view-low:bass+drums+other": [_view_counts(seed=2)]}, {"low": narrower})
    (view,) = load_bundle(viewed, device="cpu").views("mlass-pe", SOURCES)
    assert view.filter.cutoff_hz == (150.0,)


def test_views_are_added_to_format_two_bundles_only(viewed: Path) -> None:
    _edit(viewed, lambda m: m.update(format_version=1))
    with pytest.raises((ValueError, BundleError)):
        add_views(viewed, {"view-low:bass+drums+other": [_view_counts()]}, {"low": LOW})


def _edit(path: Path, edit) -> None:
    manifest = json.loads((path / "manifest.json").read_text())
    edit(manifest)
    (path / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m["likelihood"].pop("views"), "likelihood.views lacks"),
        (lambda m: m["likelihood"]["views"].update(high=LOW), "have no table"),
        (lambda m: m["likelihood"]["views"]["low"].update(cutoff_hz=[-1]), "cutoff"),
        (lambda m: m["likelihood"]["views"]["low"].update(weight="1"), "weight"),
    ],
)
def test_a_manifest_whose_views_do_not_hold_is_refused(viewed: Path, edit, message) -> None:
    _edit(viewed, edit)
    with pytest.raises(BundleError, match=message):
        load_bundle(viewed, device="cpu")


def test_a_views_weight_is_set_without_counting_again(viewed: Path) -> None:
    from latsep.bundle import set_likelihood

    set_likelihood(viewed, view_weight={"low": 0.25})
    (view,) = load_bundle(viewed, device="cpu").views("mlass-pe", SOURCES)
    assert view.weight == 0.25
    with pytest.raises(ValueError, match="no view 'high'"):
        set_likelihood(viewed, view_weight={"high": 1.0})
    with pytest.raises(ValueError, match="weight"):
        set_likelihood(viewed, view_weight={"low": 0.0})


def test_a_view_can_weigh_differently_per_method(viewed: Path) -> None:
    from latsep.bundle import set_likelihood

    set_likelihood(viewed, view_weight={"low": {"mlass-bp": 0.5, "mlass-pe": 0.35}})
    bundle = load_bundle(viewed, device="cpu")
    assert [v.weight for v in bundle.views("mlass-bp", SOURCES)] == [0.5]
    assert [v.weight for v in bundle.views("mlass-pe", SOURCES)] == [0.35]
    set_likelihood(viewed, view_weight={"low": {"mlass-bp": 0.5}})
    bundle = load_bundle(viewed, device="cpu")
    assert bundle.views("mlass-pe", SOURCES) == ()  # a method not named does not use it
    with pytest.raises(ValueError, match="unknown"):
        set_likelihood(viewed, view_weight={"low": {"mlass-xx": 0.5}})
    with pytest.raises(ValueError, match="weight"):
        set_likelihood(viewed, view_weight={"low": {"mlass-bp": -1}})


def test_a_view_of_the_mix_s_percussive_part_round_trips(viewed: Path) -> None:
    perc = {"filter": "full", "cutoff_hz": [], "order": 4, "part": "percussive", "weight": 0.5}
    add_views(viewed, {"view-perc:bass+drums+other": [_view_counts(seed=3)]}, {"perc": perc})
    views = {v.name: v for v in load_bundle(viewed, device="cpu").views("mlass-pe", SOURCES)}
    assert views["perc"].filter == ViewFilter("full", (), part="percussive")
    # a view of the whole mix records no part: manifests written before parts existed hold
    manifest = json.loads((viewed / "manifest.json").read_text())
    assert "part" not in manifest["likelihood"]["views"]["low"]
    assert manifest["likelihood"]["views"]["perc"]["part"] == "percussive"
