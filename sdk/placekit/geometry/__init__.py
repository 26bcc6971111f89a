"""Geometry: geographic frames and map metres, rotations, position fusion, triangulation and
camera pose (PnP)."""
