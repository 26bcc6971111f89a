"""The map file: one versioned archive (``archive``) holding a manifest, the places table
(``places``), the index and the local-feature point map (``pointmap``); ``placemap`` reads and
writes all of it. The format and its versions are described in ``docs/map-format.md``."""
