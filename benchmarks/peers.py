"""Peer place-recognition methods, scored by the same recall function as ``placekit eval``.

Each peer turns a BGR image into a global vector (dense or sparse) and ranks the database by
exhaustive search, the strongest search each can have. Vocabularies are learned on the
landmark pool in ``shared/data/pool`` (not on any evaluation set).

* ``RootSiftVlad``: OpenCV SIFT (<= 1000 keypoints, long side 640) -> RootSIFT -> VLAD over a
  64-word k-means vocabulary, signed square root, intra-normalisation, L2 (Arandjelovic &
  Zisserman 2013). 8192-D float32.
* ``OrbBow``: OpenCV ORB (1000 keypoints) -> a flat vocabulary of 1,000 binary words (k-means on
  the bits, centres rounded to the majority bit, Hamming assignment) -> tf-idf vectors compared
  with DBoW2's L1 score, stored as an inverted file (word id + weight per non-zero).
* ``FloatGem``: the shipped ImageNet GeM's raw 1280-D float descriptor, brute-force cosine
  (what placekit compresses to 256-D whitened codes).
* ``CoralMobileNet``: the int8 MobileNetV2 TFLite in ``shared/data/baselines/coral``: its
  1280-D average-pooled embedding at 224 x 224, dequantised, L2-normalised, cosine.
"""
from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np

from placekit.local.matching import root_sift
from placekit.index.quantize import assign, kmeans

MAX_SIDE = 640


def _grey(bgr: np.ndarray) -> np.ndarray:
    scale = MAX_SIDE / max(bgr.shape[:2])
    if scale < 1:
        bgr = cv2.resize(bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)


class DensePeer:
    """Dense vectors, exhaustive inner-product search."""

    name = ""
    bytes_per_value = 4

    def fit(self, train_images: list[np.ndarray]) -> None:
        pass

    def describe(self, bgr: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def index(self, vectors: list[np.ndarray]) -> None:
        self.db = np.stack(vectors).astype(np.float32)

    def search(self, vector: np.ndarray, k: int) -> np.ndarray:
        scores = self.db @ vector
        return np.argsort(-scores, kind="stable")[:k]

    def bytes_per_place(self) -> float:
        return float(self.db.shape[1] * self.bytes_per_value)


class RootSiftVlad(DensePeer):
    name = "RootSIFT + VLAD-64 (OpenCV, 8192-D float)"

    def __init__(self, words: int = 64):
        self.words = words
        self.sift = cv2.SIFT_create(nfeatures=1000)

    def _local(self, bgr):
        _, desc = self.sift.detectAndCompute(_grey(bgr), None)
        return root_sift(desc) if desc is not None else np.zeros((0, 128), np.float32)

    def fit(self, train_images):
        self.centres = kmeans(np.concatenate([self._local(b) for b in train_images]), self.words)

    def describe(self, bgr):
        d = self._local(bgr)
        v = np.zeros((self.words, 128), np.float32)
        if len(d):
            words = assign(d, self.centres)
            np.add.at(v, words, d - self.centres[words])
        v = np.sign(v) * np.sqrt(np.abs(v))
        v /= np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
        v = v.ravel()
        return v / max(float(np.linalg.norm(v)), 1e-12)


class OrbBow:
    """ORB bag of binary words, tf-idf, DBoW2 L1 score, inverted-file storage."""

    name = "ORB bag of words, tf-idf (DBoW-style, 1000 words)"

    def __init__(self, words: int = 1000):
        self.words = words
        self.orb = cv2.ORB_create(nfeatures=1000)
        self.matcher = cv2.BFMatcher(cv2.NORM_HAMMING)

    def _local(self, bgr):
        _, desc = self.orb.detectAndCompute(_grey(bgr), None)
        return desc if desc is not None else np.zeros((0, 32), np.uint8)

    def fit(self, train_images):
        bits = np.unpackbits(np.concatenate([self._local(b) for b in train_images]), axis=1)
        centres = kmeans(bits.astype(np.float32), self.words)
        self.vocab = np.packbits(centres >= 0.5, axis=1)

    def _term_counts(self, bgr) -> np.ndarray:
        desc = self._local(bgr)
        counts = np.zeros(self.words, np.float32)
        if len(desc):
            for m in self.matcher.match(desc, self.vocab):
                counts[m.trainIdx] += 1
        return counts

    def describe(self, bgr):
        return self._term_counts(bgr)

    def index(self, vectors):
        tf = np.stack(vectors)
        df = (tf > 0).sum(0)
        self.idf = np.log(len(tf) / np.maximum(df, 1)).astype(np.float32)
        self.db = np.stack([self._weigh(v) for v in tf])

    def _weigh(self, counts):
        v = counts / max(float(counts.sum()), 1.0) * self.idf
        return v / max(float(np.abs(v).sum()), 1e-12)

    def search(self, counts, k):
        v = self._weigh(counts)
        # DBoW2 L1 score: 1 - 0.5 |a - b|_1 for L1-normalised a, b
        scores = 1.0 - 0.5 * np.abs(self.db - v).sum(1)
        return np.argsort(-scores, kind="stable")[:k]

    def bytes_per_place(self) -> float:
        return float((self.db > 0).sum(1).mean() * 8)   # int32 word id + float32 weight per entry


class FloatGem(DensePeer):
    name = "ImageNet GeM, 1280-D float, brute force"

    def __init__(self, threads: int = 0):
        from placekit.inference.engine import open_engine
        from placekit.inference.extractors import GlobalExtractor
        from placekit.inference.catalog import resolve_model
        self.extractor = GlobalExtractor(open_engine(resolve_model("gem-imagenet-fp32"), threads=threads))

    def describe(self, bgr):
        return self.extractor.describe_bgr(bgr)


class CoralMobileNet(DensePeer):
    name = "Coral MobileNetV2 int8 TFLite, 1280-D pooled embedding"
    EMBEDDING = "MobilenetV2/Logits/AvgPool"

    def __init__(self, model: Path, threads: int = 0):
        from ai_edge_litert.interpreter import Interpreter
        self.interpreter = Interpreter(model_path=str(model), num_threads=threads or None,
                                       experimental_preserve_all_tensors=True)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.embedding = next(d for d in self.interpreter.get_tensor_details() if d["name"] == self.EMBEDDING)

    def describe(self, bgr):
        rgb = cv2.resize(bgr, (224, 224), interpolation=cv2.INTER_AREA)[..., ::-1]
        self.interpreter.set_tensor(self.input["index"], np.ascontiguousarray(rgb[None]))
        self.interpreter.invoke()
        scale, zero = self.embedding["quantization"]
        v = (self.interpreter.get_tensor(self.embedding["index"]).astype(np.float32).ravel() - zero) * scale
        return v / max(float(np.linalg.norm(v)), 1e-12)


def run_peer(peer, database: list[Path], queries: list[Path], depth: int = 10) -> dict:
    """Describe the database, then decode + describe + search every query (timed). Returns the ranked
    database rows per query, latencies and bytes per place."""
    from placekit.inference.imageio import read_image

    peer.index([peer.describe(read_image(p)) for p in database])
    ranked, times = [], []
    for path in queries:
        t = time.perf_counter()             # from the file, as placekit's localize(path) is timed
        ranked.append(peer.search(peer.describe(read_image(path)), depth))
        times.append(time.perf_counter() - t)
    return {"ranked": ranked, "latency_ms_p50": float(np.percentile(times, 50) * 1000),
            "latency_ms_p99": float(np.percentile(times, 99) * 1000), "bytes_per_place": peer.bytes_per_place()}
