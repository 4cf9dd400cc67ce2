"""ComfyUI V3 node wrappers. Each nodes_*.py module lists its node classes in NODES."""
from __future__ import annotations

import importlib
import logging
import pkgutil

log = logging.getLogger("VLOGGER")


def collect_nodes() -> list:
    """Import every nodes_*.py module and gather its NODES. A module whose optional dependency
    is missing logs one clear line and the rest of the pack still loads."""
    found = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not info.name.startswith("nodes_"):
            continue
        try:
            module = importlib.import_module(f"{__name__}.{info.name}")
        except Exception as e:  # keep the rest of the pack usable
            log.error("VLOGGER: could not load %s: %s", info.name, e)
            continue
        for node in getattr(module, "NODES", []):
            try:  # one malformed schema must not take the whole pack down
                node.define_schema().validate()
            except Exception as e:
                log.error("VLOGGER: node %s in %s is invalid: %s", node.__name__, info.name, e)
                continue
            found.append(node)
    return found
