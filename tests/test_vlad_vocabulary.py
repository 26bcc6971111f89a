"""A VLAD vocabulary shipped beside a local model is found through its card, checked, and used
by VLAD maps that ask for it instead of one learned on the map (issue 16)."""
from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest

import placekit as pk
from placekit.inference.catalog import shipped_vlad, shipped_vocabulary
from placekit.inference.imageio import to_bgr as pk_bgr
from placekit.local.vlad import vlad
from placekit.mapfile.placemap import PlaceMap

from tiny_models import patch_model

WORDS, DIM = 4, 16


def _model_folder(tmp_path, sha_ok: bool = True):
    folder = tmp_path / "family"
    folder.mkdir()
    model = patch_model(folder / "tiny-patch.onnx")
    vocabulary = np.random.default_rng(0).normal(size=(WORDS, DIM)).astype(np.float32)
    vocabulary /= np.linalg.norm(vocabulary, axis=1, keepdims=True)
    np.save(folder / "tiny-vlad4.npy", vocabulary)
    sha = hashlib.sha256((folder / "tiny-vlad4.npy").read_bytes()).hexdigest() if sha_ok else "0" * 64
    card = {"name": "tiny", "kind": "local", "files": [],
            "vlad_vocabularies": [{"file": "tiny-vlad4.npy", "local_model": model.name, "words": WORDS, "sha256": sha}]}
    (folder / "card.json").write_text(json.dumps(card))
    return model, vocabulary


def test_the_vocabulary_is_found_only_for_its_model_words_and_bytes(tmp_path):
    model, vocabulary = _model_folder(tmp_path)
    found = shipped_vocabulary(model, WORDS, DIM)
    assert found is not None and found[1] == "tiny-vlad4.npy"
    np.testing.assert_array_equal(found[0], vocabulary)
    assert shipped_vocabulary(model, WORDS * 2, DIM) is None            # another vocabulary size
    assert shipped_vocabulary(model, WORDS, DIM * 2) is None            # another descriptor size
    other = model.with_name("other.onnx")
    shutil.copyfile(model, other)
    assert shipped_vocabulary(other, WORDS, DIM) is None                # another model file


def test_a_modified_vocabulary_file_is_ignored(tmp_path):
    model, _ = _model_folder(tmp_path, sha_ok=False)
    assert shipped_vocabulary(model, WORDS, DIM) is None


@pytest.mark.parametrize("choice", ["shipped", "map"])
def test_vlad_maps_use_the_shipped_vocabulary_when_asked(tmp_path, street, choice):
    model, vocabulary = _model_folder(tmp_path)
    builder = pk.MapBuilder(pk.BuildOptions(descriptor="vlad", local_features=str(model), vlad_words=WORDS,
                                            max_keypoints=128, vlad_vocabulary=choice))
    for path in sorted((street / "database").glob("*.jpg"))[:12]:
        builder.add(path, pk.Location(x=float(len(builder)) * 10, y=0.0))
    info = builder.build(tmp_path / "vlad.pkmap")
    assert info.descriptor["vocabulary"] == ("shipped: tiny-vlad4.npy" if choice == "shipped" else "learned on the map")
    m = PlaceMap.load(tmp_path / "vlad.pkmap")
    try:
        assert np.array_equal(m.vlad.vocabulary, vocabulary) == (choice == "shipped")
    finally:
        m.close()


def test_vlad_maps_learn_their_vocabulary_by_default():
    assert pk.BuildOptions().vlad_vocabulary == "map"
    assert pk.BuildOptions().vlad_whitening is False            # it lost on the generalization suite


WHITENED_DIM = 8


def _add_whitening(model, sha_ok: bool = True, dim: int = WHITENED_DIM):
    """A PCA-whitening of the tiny vocabulary's VLAD, recorded under its card entry."""
    folder = model.parent
    rng = np.random.default_rng(1)
    mean = rng.normal(size=WORDS * DIM).astype(np.float32) * 0.01
    projection = np.linalg.qr(rng.normal(size=(WORDS * DIM, dim)))[0].astype(np.float32)
    np.savez(folder / "tiny-vlad4-pcaw.npz", mean=mean, projection=projection)
    card = json.loads((folder / "card.json").read_text())
    sha = hashlib.sha256((folder / "tiny-vlad4-pcaw.npz").read_bytes()).hexdigest() if sha_ok else "0" * 64
    card["vlad_vocabularies"][0]["whitening"] = {"file": "tiny-vlad4-pcaw.npz", "sha256": sha, "dim": dim}
    (folder / "card.json").write_text(json.dumps(card))
    return mean, projection


def test_the_whitening_is_found_with_its_vocabulary_and_checked(tmp_path):
    model, _ = _model_folder(tmp_path)
    assert shipped_vlad(model, WORDS, DIM)[2] is None                   # a vocabulary without whitening
    mean, projection = _add_whitening(model)
    found = shipped_vlad(model, WORDS, DIM)
    np.testing.assert_array_equal(found[2].mean, mean)
    np.testing.assert_array_equal(found[2].projection, projection)
    _add_whitening(model, sha_ok=False)                                  # modified bytes: not used
    assert shipped_vlad(model, WORDS, DIM)[2] is None


def test_a_vlad_map_with_the_shipped_whitening_stores_and_applies_it(tmp_path, street):
    model, _ = _model_folder(tmp_path)
    mean, projection = _add_whitening(model)
    builder = pk.MapBuilder(pk.BuildOptions(descriptor="vlad", local_features=str(model), vlad_words=WORDS,
                                            max_keypoints=128, vlad_vocabulary="shipped",
                                            vlad_whitening=True))
    paths = sorted((street / "database").glob("*.jpg"))[:12]
    for i, path in enumerate(paths):
        builder.add(path, pk.Location(x=float(i) * 10, y=0.0))
    info = builder.build(tmp_path / "vlad.pkmap")
    assert info.descriptor["dim"] == WHITENED_DIM and "whitening" in info.descriptor
    m = PlaceMap.load(tmp_path / "vlad.pkmap")
    try:
        assert m.manifest["min_reader_version"] == 4                   # older readers would skip the whitening
        np.testing.assert_array_equal(m.vlad.whitening.projection, projection)
    finally:
        m.close()
    with pk.Localizer.open(tmp_path / "vlad.pkmap") as loc:
        assert loc.extractor.dim == WHITENED_DIM
        d, feats = loc.extractor.describe_with_features(pk_bgr(paths[3]))
        raw = vlad(feats.descriptors, m.vlad.vocabulary)
        expected = (raw - mean) @ projection
        np.testing.assert_allclose(d, expected / np.linalg.norm(expected), atol=1e-5)
        assert loc.localize(paths[3]).matches                           # searches the whitened index


def test_a_vlad_map_whose_whitening_does_not_fit_its_vocabulary_is_refused(tmp_path, street):
    from placekit.index.quantize import PCAWhitening
    from placekit.local.vlad import VladModel

    model, _ = _model_folder(tmp_path)
    _add_whitening(model)
    builder = pk.MapBuilder(pk.BuildOptions(descriptor="vlad", local_features=str(model), vlad_words=WORDS,
                                            max_keypoints=128, vlad_vocabulary="shipped",
                                            vlad_whitening=True))
    for i, path in enumerate(sorted((street / "database").glob("*.jpg"))[:12]):
        builder.add(path, pk.Location(x=float(i) * 10, y=0.0))
    builder.build(tmp_path / "vlad.pkmap")
    m = PlaceMap.load(tmp_path / "vlad.pkmap")
    try:
        w = m.vlad.whitening
        m.vlad = VladModel(m.vlad.vocabulary, PCAWhitening(np.zeros(WORDS * DIM + 1, np.float32), w.projection))
        m.save(tmp_path / "bad.pkmap")
    finally:
        m.close()
    with pytest.raises(pk.errors.MapFormatError, match="whitening"):
        PlaceMap.load(tmp_path / "bad.pkmap")
