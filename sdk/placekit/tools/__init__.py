"""Around the API: the command line, ``doctor``, the demo, dataset evaluation and its plots."""
