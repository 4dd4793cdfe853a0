"""Model helpers for the host side: the offline tiny model (`llem models make-tiny`)."""
from __future__ import annotations

from .tiny import is_tiny_model, make_tiny_model, read_provenance

__all__ = ["is_tiny_model", "make_tiny_model", "read_provenance"]
