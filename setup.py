"""Builds the optional C speedups of IdentifiesLog (everything else is in pyproject.toml).

``personas_warehouse._speedups`` is built where a C compiler and the Python headers are present;
where the build fails, the package installs without it and runs its pure-Python code (same
results, a slower first index: docs/performance.md).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "personas_warehouse._speedups",
            ["personas_warehouse/_speedups.c"],
            optional=True,
        )
    ]
)
