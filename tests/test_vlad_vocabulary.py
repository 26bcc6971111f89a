"""A VLAD vocabulary shipped beside a local model is found through its card, checked, and used
by VLAD maps that ask for it instead of one learned on the map (issue 16)."""
from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest

import placekit as pk
from placekit.inference.catalog import shipped_vocabulary
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
        assert np.array_equal(m.vocabulary, vocabulary) == (choice == "shipped")
    finally:
        m.close()


def test_vlad_maps_learn_their_vocabulary_by_default():
    assert pk.BuildOptions().vlad_vocabulary == "map"
