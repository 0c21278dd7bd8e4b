"""Protection strategies: each file in this package defines one (see base.Strategy); importing the
package registers them all, so adding a strategy means adding one file."""

from __future__ import annotations

import importlib
import pkgutil

from fedsplit.protection.base import STRATEGIES, ClientNet, Field, ServerNet, Strategy, register

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")


def make_strategy(protection, model) -> Strategy:  # noqa: ANN001 - config dataclasses
    """The configured strategy object; ValueError naming the unknown strategy otherwise."""
    try:
        cls = STRATEGIES[protection.strategy]
    except KeyError:
        raise ValueError(f"protection.strategy: unknown {protection.strategy!r}; known: "
                         f"{', '.join(sorted(STRATEGIES))}") from None
    return cls(protection, model)


__all__ = ["STRATEGIES", "ClientNet", "Field", "ServerNet", "Strategy", "make_strategy", "register"]
