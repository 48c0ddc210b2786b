"""Objective strings for the tests, generated from the preset registry (``rankgrad.objectives.PRESETS``).

A preset added to the registry is then in every test that loops over "every preset", and a preset that
cannot be built at the K a test uses is reported (:func:`skipped_presets`), not silently dropped:
:func:`missing_names` lists the registry names a list of strings does not spell.

Parameter choice at K = k, deterministic: the preset's example parameter if the parser accepts it at
that K; otherwise, for an integer parameter (a count or a rank), the nearest accepted value in
[0, k] (the smaller one first): ``trim:1@5`` → ``trim:0@2``, ``rank:2@5`` → ``rank:1@1``. A real
parameter (a level) does not depend on K and is kept or, if refused, the preset is skipped at that K.
The builders check the ranges (``PresetParam.range``); acceptance is ``rankgrad.parse`` not raising.
"""

from __future__ import annotations

import rankgrad
from rankgrad import objectives as O


def _head(spec: str) -> tuple[str, str | None]:
    """``(name, param)`` of ``name[:param][@K]``."""
    name, _, param = spec.partition("@")[0].partition(":")
    return name, (param or None)


def _accepted(spec: str) -> str | None:
    """None if ``rankgrad.parse`` builds ``spec``, else why not (the first line of its error)."""
    try:
        rankgrad.parse(spec)
    except ValueError as e:
        return str(e).splitlines()[0]
    return None


def _candidates(preset: O.Preset, k: int) -> list[str | None]:
    """Parameters to try at K = k, in order: the example's, then (integer ones) the nearest in [0, k]."""
    param = _head(preset.example)[1]
    if param is None or preset.param is None or preset.param.kind != "int":
        return [param]
    p = int(param)
    near = sorted(range(0, k + 1), key=lambda x: (abs(x - p), x))
    return [str(x) for x in near]


def _spell(name: str, param: str | None, k: int | None) -> str:
    head = name if param is None else f"{name}:{param}"
    return head if k is None else f"{head}@{k}"


def _choose(preset: O.Preset, k: int) -> tuple[str | None, str | None]:
    """``(param, None)`` with the parameter chosen at K = k, or ``(None, why)`` if none is accepted."""
    why = None
    for param in _candidates(preset, k):
        why = _accepted(_spell(preset.name, param, k))
        if why is None:
            return param, None
    return None, why


def preset_specs(k: int) -> list[str]:
    """Every registry preset at K = ``k``: its example with K = k (parameter kept valid, see the module
    docstring), each alias spelled once with the same parameter, and for an optional K (``mean``) also
    the bare form. Registry order; presets with no valid parameter at this K are left out (they are in
    :func:`skipped_presets`)."""
    specs: list[str] = []
    for preset in O.PRESETS.values():
        param, why = _choose(preset, k)
        if why is not None:
            continue
        if preset.k == "optional":
            specs.append(_spell(preset.name, param, None))
        specs.extend(_spell(name, param, k) for name in (preset.name, *preset.aliases))
    return specs


def skipped_presets(k: int) -> dict[str, str]:
    """Presets :func:`preset_specs` leaves out at K = ``k``: name → the parser's reason."""
    out = {}
    for preset in O.PRESETS.values():
        why = _choose(preset, k)[1]
        if why is not None:
            out[preset.name] = why
    return out


def registry_names() -> list[str]:
    """Every name the parser accepts for a preset: canonical names and aliases, in registry order."""
    return [n for p in O.PRESETS.values() for n in (p.name, *p.aliases)]


def missing_names(specs: list[str] | tuple[str, ...]) -> list[str]:
    """The registry names (canonical or alias) that no string in ``specs`` spells."""
    used = {_head(s)[0] for s in specs}
    return [n for n in registry_names() if n not in used]


def merged(*lists: list[str] | tuple[str, ...]) -> list[str]:
    """The lists concatenated, each string kept once (first place)."""
    return list(dict.fromkeys(s for lst in lists for s in lst))
