"""The vendored files: checksums enforced, mesh data complete, vendoring reproducible."""

from __future__ import annotations

import hashlib
from importlib import resources

import numpy as np
import pytest

from protoface.worker.face.analysis import loader, topology
from protoface.worker.face.analysis.models import vendor

PACKAGE = "protoface.worker.face.analysis.models"


def test_worker_resolves_to_this_worktree() -> None:
    assert str(resources.files(PACKAGE)).startswith(str(vendor.HERE.parents[3]))


def test_every_data_file_has_a_matching_checksum() -> None:
    files = {p.name for p in vendor.HERE.iterdir() if p.suffix in (".tflite", ".json")}
    recorded = loader._digests()
    assert set(recorded) == files
    for name in files:
        assert hashlib.sha256((vendor.HERE / name).read_bytes()).hexdigest() == recorded[name]


def test_loader_refuses_a_file_whose_digest_differs(monkeypatch: pytest.MonkeyPatch) -> None:
    loader.data_file.cache_clear()
    monkeypatch.setattr(loader, "_digests", lambda: {"mesh.json": "0" * 64})
    try:
        with pytest.raises(loader.ModelIntegrityError):
            loader.data_file("mesh.json")
        with pytest.raises(loader.ModelIntegrityError):
            loader.data_file("face_landmark.tflite")  # no digest at all
    finally:
        loader.data_file.cache_clear()


def test_edge_sets_are_read_from_the_connections_source_sorted() -> None:
    names = {key: f"X_{key}" for key in vendor.EDGE_SETS}
    source = "\n".join(f"{name} = frozenset([(3, 1), (0, 2)])" for name in names.values())
    original = vendor.EDGE_SETS
    try:
        vendor.EDGE_SETS = names
        edges = vendor.edge_sets(source)
    finally:
        vendor.EDGE_SETS = original
    assert edges["lips"] == [[0, 2], [3, 1]]


def test_mesh_data_has_the_topology_of_mediapipe() -> None:
    assert len(topology.edges("tesselation")) == 2556
    assert np.unique(topology.edges("tesselation")).tolist() == list(range(468))
    assert len(topology.loop("face_oval")) == 36
    assert set(topology.loop("right_iris")) == {469, 470, 471, 472}
    assert set(topology.loop("left_iris")) == {474, 475, 476, 477}
    for side in ("right", "left"):
        index = topology.eye_refinement(side)
        assert len(index) == len(set(index.tolist())) == 71
    # The first 16 refined points are the eye's own contour in the connection sets.
    assert set(topology.eye_refinement("right")[:16].tolist()) == set(
        np.unique(topology.edges("right_eye")).tolist())
    assert set(topology.eye_refinement("left")[:16].tolist()) == set(
        np.unique(topology.edges("left_eye")).tolist())


def test_models_load_with_the_expected_inputs_and_outputs() -> None:
    sizes = {
        "face_detection_short_range.tflite": {896 * 16, 896},
        "face_landmark.tflite": {1404, 1},
        "iris_landmark.tflite": {213, 15},
        "selfie_segmentation.tflite": {256 * 256},
    }
    for name, outputs in sizes.items():
        assert {size for _, size in loader.model(name)._outputs} == outputs
