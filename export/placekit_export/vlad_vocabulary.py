"""The VLAD vocabulary shipped with a local model, learned on a generic training-side pool.

    python -m placekit_export.vlad_vocabulary --local hardnet-int8 --words 64 \\
        -o models/hardnet/hardnet-int8-vlad64.npy

Images: every ``pool`` photo (67 outdoor landmarks), Strecha fountain-P11 and Herz-Jesus-P8
(HardNet's training scenes; the generalization suite's Strecha set is entry-P10 and
Herz-Jesus-P25, left out), and 200 IE Tower frames of the training floors (the held-out highrise
floors left out). Never ``landmarks_val``, ``wxbs`` or KITTI. Local features are extracted by
the runtime's extractor (SIFT keypoints, <= 1,024 per image at <= 640 px), int8-rounded as maps
store them, and clustered by ``placekit.local.vlad.train_vocabulary`` (k-means on up to 100,000
descriptors, seeded). The vocabulary is written as a NumPy file and recorded in the model
family's ``card.json`` (``vlad_vocabularies``), which is how ``MapBuilder`` finds it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from placekit.inference.catalog import resolve_model
from placekit.inference.imageio import list_images
from placekit.inference.loading import local_extractor
from placekit.local.extractor import LocalFeatures
from placekit.local.vlad import train_vocabulary
from placekit.mapfile.pointmap import dequantize_descriptors, quantize_descriptors
from placekit.options import RuntimeOptions

from .cards import write_card
from .parity_images import ie_tower_frames, shared_data_dir

STRECHA_SCENES = ("fountain-P11", "Herz-Jesus-P8")
IE_TOWER_FRAMES = 200


def pool_images() -> list[Path]:
    data = shared_data_dir()
    if data is None:
        raise FileNotFoundError("shared/data not found (set PLACEKIT_SHARED_DATA)")
    images = sorted(p for d in sorted((data / "pool").glob("*")) if d.is_dir() for p in list_images(d))
    for scene in STRECHA_SCENES:
        images += list_images(data / "strecha" / scene / "images")
    indoor = ie_tower_frames(data, held_out=False)
    images += [indoor[int(i)] for i in np.linspace(0, len(indoor) - 1, min(IE_TOWER_FRAMES, len(indoor)))]
    return images


def pool_features(local: str) -> tuple[list[LocalFeatures], list[Path]]:
    """The local features of every ``pool_images`` photo as a map stores them (descriptors
    int8-rounded), in the runtime's extractor (<= 1,024 keypoints at <= 640 px)."""
    extractor, _ = local_extractor(local, 1024, 640, RuntimeOptions(threads=2))
    images = pool_images()
    features = []
    for path in images:
        gray = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if gray is not None:
            f = extractor.extract(gray)
            features.append(replace(f, descriptors=dequantize_descriptors(quantize_descriptors(f.descriptors))))
    return features, images


def learn(local: str, words: int, seed: int = 0) -> tuple[np.ndarray, list[Path]]:
    """(words, D) float32 vocabulary of the local model's descriptors over ``pool_images``."""
    features, images = pool_features(local)
    return train_vocabulary(np.concatenate([f.descriptors for f in features]), words, seed=seed), images


def record_in_card(vocabulary_path: Path, local: str, words: int, n_images: int, command: str) -> None:
    """Add (or replace) the vocabulary's entry in its folder's card.json."""
    card_path = vocabulary_path.parent / "card.json"
    card = json.loads(card_path.read_text())
    entry = {
        "file": vocabulary_path.name,
        "local_model": Path(resolve_model(local)).name,
        "words": words,
        "sha256": hashlib.sha256(vocabulary_path.read_bytes()).hexdigest(),
        "trained_on": f"{n_images} training-side images: shared/data/pool (all), Strecha "
        f"{', '.join(STRECHA_SCENES)}, {IE_TOWER_FRAMES} IE Tower frames of the training floors",
        "command": command,
    }
    others = [v for v in card.get("vlad_vocabularies", []) if v.get("file") != vocabulary_path.name]
    card["vlad_vocabularies"] = others + [entry]
    write_card(card_path.parent, card)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--local", default="hardnet-int8")
    p.add_argument("--words", type=int, default=64)
    p.add_argument("-o", "--output", type=Path, required=True)
    args = p.parse_args(argv)
    vocabulary, images = learn(args.local, args.words)
    tmp = args.output.with_suffix(".tmp.npy")
    np.save(tmp, vocabulary.astype(np.float32))
    os.replace(tmp, args.output)
    command = f"python -m placekit_export.vlad_vocabulary --local {args.local} --words {args.words} -o {args.output}"
    record_in_card(args.output, args.local, args.words, len(images), command)
    print(f"wrote {args.output}: {vocabulary.shape} from {len(images)} images")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
