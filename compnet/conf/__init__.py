"""Hydra configs packaged with compnet (a package so that Hydra finds them when installed)."""
