"""placekit_export: PyTorch networks, export to the files the runtime ships, model cards.
Needs the ``[train]`` extra (torch). Nothing here is imported by the runtime."""
