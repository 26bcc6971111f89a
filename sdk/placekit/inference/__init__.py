"""Running models: image decoding and checks (``imageio``), preprocessing, ONNX Runtime / LiteRT
engines, model metadata, the shipped-model catalog and the descriptor extractors."""
