"""Builds the optional C speedups of IdentifiesLog (everything else is in pyproject.toml).

``personas_warehouse._speedups`` is built where a C compiler and the Python headers are present;
where the build fails, the package installs without it and runs its pure-Python code (same
results, a slower first index: docs/performance.md).
"""

import platform

from setuptools import Extension, setup

# The extension reads CPython's object layouts (slots, list items, mappingproxy): CPython only.
speedups = Extension(
    "personas_warehouse._speedups",
    ["personas_warehouse/_speedups.c"],
    optional=True,
)
setup(ext_modules=[speedups] if platform.python_implementation() == "CPython" else [])
