"""The patch cutter (shared by training and runtime) and local descriptors."""
import cv2
import numpy as np
import pytest

import placekit as pk
from placekit.inference.engine import open_engine
from placekit.inference.extractors import LocalDescriber
from placekit.local.patches import cut_patches, patch_affine
from tiny_models import patch_model


def _image():
    rng = np.random.default_rng(0)
    return cv2.GaussianBlur(rng.integers(0, 255, (200, 300), dtype=np.uint8), (0, 0), 2)


def test_patches_equal_warp_affine_of_the_documented_map():
    img = _image()
    kps = np.array([[100.5, 80.2, 6.0, 30.0], [150.0, 120.0, 3.0, -1.0], [5.0, 5.0, 10.0, 270.0]])
    patches = cut_patches(img, kps)
    for kp, patch in zip(kps, patches):
        ref = cv2.warpAffine(img, patch_affine(kp), (32, 32), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                             borderMode=cv2.BORDER_REPLICATE)
        assert np.array_equal(patch, ref)


def test_patch_centre_scale_and_rotation():
    img = np.zeros((101, 101), np.uint8)
    img[50, 50:70] = 255  # a bright ray pointing right (+x) from the centre
    upright = cut_patches(img, np.array([[50.0, 50.0, 32 / 7.5, 0.0]]))[0]
    assert upright[15:17, 16:].max() > 100 and upright[:, :14].max() < 30  # ray to the right, 1 px per px
    rotated = cut_patches(img, np.array([[50.0, 50.0, 32 / 7.5, 90.0]]))[0]
    assert np.abs(rotated.astype(int) - upright.astype(int)).sum() > 1000  # orientation is normalised away
    rot_img = cv2.rotate(img, cv2.ROTATE_90_COUNTERCLOCKWISE)  # the ray now points up; OpenCV angle 90
    back = cut_patches(rot_img, np.array([[50.0, 50.0, 32 / 7.5, 90.0]]))[0]
    assert np.abs(back.astype(int) - upright.astype(int)).mean() < 3


def test_bad_image_for_patches():
    with pytest.raises(pk.InvalidImageError):
        cut_patches(np.zeros((10, 10, 3), np.uint8), np.zeros((1, 4)))
    assert cut_patches(_image(), np.zeros((0, 4))).shape == (0, 32, 32)


def test_local_describer_batches_and_pads(tmp_path):
    d = LocalDescriber(open_engine(patch_model(tmp_path / "p.onnx")), batch=8)
    patches = cut_patches(_image(), np.array([[100.0, 100.0, 5.0, 0.0]] * 3 + [[60.0, 60.0, 4.0, 45.0]] * 10))
    out = d.describe_patches(patches)
    assert out.shape == (13, 16) and np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert np.allclose(out[0], out[2]) and np.allclose(out[12], d.describe_patches(patches[12:])[0], atol=1e-6)
    kp = d.describe_keypoints(_image(), np.array([[60.0, 60.0, 4.0, 45.0]]))
    assert np.allclose(kp[0], out[3], atol=1e-6)
    with pytest.raises(pk.InvalidImageError):
        d.describe_patches(np.zeros((2, 16, 16), np.uint8))
    with pytest.raises(pk.ModelFormatError):
        from placekit.inference.extractors import GlobalExtractor
        GlobalExtractor(d.engine)
