"""The place index: PCA-whitening, product quantizers, inverted lists with an hnswlib coarse
graph, and the index's own persistence (``ivf``, ``quantize``, ``persistence``)."""
