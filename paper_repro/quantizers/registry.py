"""Name -> quantizer class registry and the ``build_quantizer`` factory."""
from __future__ import annotations

from typing import Callable

_REGISTRY: dict[str, type] = {}


def register_quantizer(name: str) -> Callable[[type], type]:
    """Class decorator: register a :class:`BaseQuantizer` subclass under ``name``."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"quantizer name must be a non-empty string, got {name!r}")

    def deco(cls: type) -> type:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"quantizer name {name!r} is already registered to {_REGISTRY[name].__name__}")
        cls.quantizer_name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def available_quantizers() -> list[str]:
    """Sorted names accepted by :func:`build_quantizer`."""
    return sorted(_REGISTRY)


def display_names() -> dict[str, str]:
    """Name -> the label pages print (each class's ``display_name``), in registration order."""
    return {n: getattr(c, "display_name", n) for n, c in _REGISTRY.items()}


def registered_quantizers() -> list[str]:
    """The names in registration order (vq, ema, fc, simvq, nsvq, transvq: the paper's order)."""
    return list(_REGISTRY)


def get_quantizer_class(name: str) -> type:
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown quantizer {name!r}; expected one of: {', '.join(available_quantizers())}"
        ) from None


def build_quantizer(name: str, num_codes: int, code_dim: int, **options):
    """Build the quantizer ``name`` with ``num_codes`` codes of dimension ``code_dim``.

    Unknown names and unknown or invalid options raise ``ValueError`` naming the problem.
    The resolved options (defaults included) are in ``q.config``.
    """
    cls = get_quantizer_class(name)
    return cls(num_codes=num_codes, code_dim=code_dim, **options)
