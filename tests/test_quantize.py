import numpy as np
import pytest

from placekit.index.quantize import PCAWhitening, ProductQuantizer, adc_inner_products, fit_opq, kmeans, l2_normalize


def _correlated(n=4000, d=32, seed=0):
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(d, d)) * np.linspace(3, 0.1, d)[None, :]
    return (rng.normal(size=(n, d)) @ mix.T + 5.0).astype(np.float32)


def test_full_whitening_gives_identity_covariance():
    x = _correlated()
    pca = PCAWhitening.fit(x, 16, shrinkage=0.0)
    z = (x - pca.mean) @ pca.projection
    cov = np.cov(z, rowvar=False)
    assert np.allclose(cov, np.eye(16), atol=1e-2)
    assert np.allclose(np.linalg.norm(pca.apply(x), axis=1), 1.0, atol=1e-5)


def test_shrinkage_scales_each_component_as_documented():
    x = _correlated()
    alpha = 0.5
    z = (x - x.mean(0)) @ PCAWhitening.fit(x, 16, shrinkage=alpha).projection
    eig = np.sort(np.linalg.eigvalsh(np.cov(x.astype(np.float64), rowvar=False)))[::-1][:16]
    expected = eig / ((1 - alpha) * eig + alpha * eig.mean())
    assert np.allclose(z.var(0, ddof=1), expected, rtol=1e-3)
    assert expected[0] > expected[-1]  # large components keep more weight than small ones


def test_kmeans_beats_random_centroids():
    x = _correlated()
    c = kmeans(x, 32, seed=1)
    rnd = x[np.random.default_rng(1).choice(len(x), 32, replace=False)]
    err = lambda cc: ((x[:, None] - cc[None]) ** 2).sum(2).min(1).mean()  # noqa: E731
    assert err(c) < 0.8 * err(rnd)


def test_adc_equals_inner_product_with_reconstruction():
    x = l2_normalize(_correlated())
    pq = ProductQuantizer.fit(x, 8, seed=0)
    codes = pq.encode(x[:100])
    recon = pq.decode(codes)
    for q in x[200:203]:
        assert np.allclose(adc_inner_products(pq.inner_product_table(q), codes), recon @ q, atol=1e-5)


def test_adc_with_fewer_than_256_centroids():
    x = l2_normalize(_correlated(100, 16))
    pq = ProductQuantizer.fit(x, 4, seed=0)  # ksub = min(256, n) = 100
    codes = pq.encode(x)
    assert pq.ksub == 100
    assert np.allclose(adc_inner_products(pq.inner_product_table(x[0]), codes), pq.decode(codes) @ x[0], atol=1e-5)


def test_pq_reconstruction_error_is_small_and_opq_helps():
    x = l2_normalize(_correlated(6000, 32))
    pq = ProductQuantizer.fit(x, 4, seed=0)
    err_pq = ((pq.decode(pq.encode(x)) - x) ** 2).sum(1).mean()
    assert err_pq < 0.2 * (x ** 2).sum(1).mean()
    r = fit_opq(x, 4, iters=4)
    assert np.allclose(r @ r.T, np.eye(32), atol=1e-4)
    y = x @ r
    opq = ProductQuantizer.fit(y, 4, seed=0)
    err_opq = ((opq.decode(opq.encode(y)) - y) ** 2).sum(1).mean()
    assert err_opq < err_pq


def test_kmeans_needs_enough_points():
    from placekit.errors import PlaceIndexError

    with pytest.raises(PlaceIndexError):
        kmeans(np.zeros((3, 2), np.float32), 4)


def test_principal_axes_from_the_gram_matrix_match_the_covariance_ones():
    """Fewer rows than dimensions (a small map of 1280-D or VLAD descriptors) decomposes the
    N x N Gram matrix: same eigenvalues, same axes up to sign."""
    from placekit.index.quantize import _principal_axes

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 300)) @ rng.normal(size=(300, 300))
    xc = x - x.mean(0)
    values, axes = _principal_axes(xc, 40)
    full_values, full_axes = np.linalg.eigh(xc.T @ xc / (len(x) - 1))
    order = np.argsort(full_values)[::-1][:40]
    np.testing.assert_allclose(values, full_values[order], rtol=1e-8)
    np.testing.assert_allclose(np.abs((axes * full_axes[:, order]).sum(0)), 1.0, atol=1e-8)
