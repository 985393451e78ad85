"""Manifests and scripts that start the harness on clusters (see render)."""
