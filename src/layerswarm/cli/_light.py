"""Import a torch-free submodule without running its package's ``__init__``.

``layerswarm.training``, ``layerswarm.data`` and ``layerswarm.speed`` import torch in their
``__init__``; the command line only needs their config dataclasses to build its options and
``--help``. :func:`light_module` loads ``pkg.sub`` under its real name (so the class is the
one every later ``from .config import X`` gets: it is found in ``sys.modules``) and leaves
the package itself to load normally the first time real work imports it. Where the package is
already imported this is a plain import.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType


def light_module(name: str) -> ModuleType:
    if name in sys.modules:
        return sys.modules[name]
    package, _, child = name.rpartition(".")
    if package in sys.modules:
        return importlib.import_module(name)
    spec = importlib.util.find_spec(package)  # imports the grandparent (light), not the package
    if spec is None or not spec.submodule_search_locations:
        return importlib.import_module(name)
    location = Path(next(iter(spec.submodule_search_locations))) / f"{child}.py"
    sub_spec = importlib.util.spec_from_file_location(name, location)
    if sub_spec is None or sub_spec.loader is None:
        return importlib.import_module(name)
    module = importlib.util.module_from_spec(sub_spec)
    sys.modules[name] = module
    try:
        sub_spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module
