"""Local features: keypoints and patches, HardNet / RootSIFT description, matching, geometric
verification and compact VLAD."""
