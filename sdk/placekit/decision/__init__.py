"""From search results to an answer: the decision rule (``rule``) and the per-map thresholds it
uses, fitted on the map's own images (``calibration``)."""
