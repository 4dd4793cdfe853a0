"""Grid points that differ only in swept plain scalars, built without validating each one again.

Why: a 100,000-point grid over batch_size × n_prompts × ... validates the same base 100,000 times
and that was most of a dry-run's planning time. For the fields listed in FAST_KEYS, validity
depends on the value alone (their constraints and field validators read nothing else, and no
model validator of ExperimentConfig reads them), so a point is valid exactly when each of its
swept values is. Each (key, value) is validated once, inside the first point; a point whose
values all passed is the first point's validated config with those values put in; any other
point (a value that failed, a point the first point cannot stand for) goes through the full
validation, so its skip reason is the one full validation gives. tests/unit/test_expand_fast.py
checks configs, hashes and skip reasons against full validation.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import ValidationError

from ..domain import ExperimentConfig

# Top-level fields whose validation reads only their own value (ExperimentConfig's model validator
# reads engine, mode, prefix_caching, dataset, serving and the engine sections: never these).
FAST_KEYS = frozenset({"model", "name", "n_prompts", "max_input_tokens", "max_output_tokens", "precision",
                       "batch_size", "random_seed"})
_PLAIN = frozenset({str, int, float, bool, type(None)})


class ScalarSweep:
    """Builds the config of a grid point from its digits; None where the full validation must decide."""

    def __init__(self, keys: list[str], values: list[list[Any]], template: ExperimentConfig,
                 first_raw: dict[str, Any], context: dict[str, Any]):
        self.keys = keys
        self.template = template
        self.accepted: list[list[Any]] = []  # per key, per value: the validated value, or _REFUSED
        for key, options in zip(keys, values):
            out = []
            for value in options:
                try:
                    config = ExperimentConfig.model_validate({**first_raw, key: value}, context=context)
                    out.append(config.__dict__[key])
                except (ValidationError, ValueError):
                    out.append(_REFUSED)
            self.accepted.append(out)

    @classmethod
    def of(cls, grid, sections: dict[str, Any], context: dict[str, Any]) -> "ScalarSweep | None":
        """The fast builder for `grid`, or None where its sweep is not only plain scalars of FAST_KEYS
        or its first point is invalid (then every point is validated in full)."""
        if grid.n_grid < 2 or not grid.keys or any(key not in FAST_KEYS for key in grid.keys):
            return None
        if any(type(value) not in _PLAIN for options in grid.values for value in options):
            return None
        first_raw = grid.raw(0, sections)
        try:
            template = ExperimentConfig.model_validate(first_raw, context=context)
        except (ValidationError, ValueError):
            return None
        return cls(grid.keys, grid.values, template, first_raw, context)

    def config(self, digits: Sequence[int]) -> ExperimentConfig | None:
        """The point's config (paths not yet resolved), or None: some value failed on its own."""
        update = {}
        for key, accepted, digit in zip(self.keys, self.accepted, digits):
            value = accepted[digit]
            if value is _REFUSED:
                return None
            update[key] = value
        return self.template.model_copy(update=update)


    def hasher(self, resolved: ExperimentConfig,
               section_json: dict[int, str]) -> Callable[[Sequence[int]], str] | None:
        """config_hash of a point built here, from its digits: the first point's hashed text with the
        swept fields' parts replaced (each encoded once). `resolved`: the template with its paths
        resolved, as every point's are. None where that does not hold: a swept model (each resolves
        on its own), a serving config (hashed another way)."""
        parts = None if "model" in self.keys else resolved.canonical_parts(section_json)
        if parts is None:
            return None
        slots = {name: i for i, (name, _) in enumerate(parts)}
        texts = [part for _, part in parts]
        swaps = []  # (position of the key, slot of its part, its part per value)
        for position, (key, accepted) in enumerate(zip(self.keys, self.accepted)):
            if key not in slots:  # not hashed (name)
                continue
            encoded = [None if value is _REFUSED else
                       dict(resolved.model_copy(update={key: value}).canonical_parts(section_json) or ())[key]
                       for value in accepted]
            swaps.append((position, slots[key], encoded))

        def hash_of(digits: Sequence[int]) -> str:
            text = texts.copy()
            for position, slot, encoded in swaps:
                text[slot] = encoded[digits[position]]
            return hashlib.sha256(("{" + ",".join(text) + "}").encode()).hexdigest()[:16]

        return hash_of


class _Refused:
    __slots__ = ()


_REFUSED = _Refused()
