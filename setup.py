"""Build the compiled core: every ``hyperplane/_core/*.pyx`` becomes an extension module.

Metadata lives in pyproject.toml. ``HYPERPLANE_DEBUG=1`` turns bounds checks on and builds
``-O0 -g``; ``HYPERPLANE_ANNOTATE=1`` writes ``cython -a`` HTML beside each ``.pyx``.
"""

import glob
import os

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("HYPERPLANE_DEBUG", "0") != "0"
directives = {
    "language_level": 3,
    "embedsignature": True,
    "boundscheck": DEBUG,
    "wraparound": False,
    "initializedcheck": DEBUG,
    "cdivision": True,
}
extensions = [
    Extension(
        "hyperplane._core." + os.path.splitext(os.path.basename(pyx))[0],
        [pyx],
        include_dirs=[np.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=["-O0", "-g"] if DEBUG else ["-O3"],
    )
    for pyx in sorted(glob.glob("hyperplane/_core/*.pyx"))
]
setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives=directives,
        annotate=os.environ.get("HYPERPLANE_ANNOTATE") == "1",
    )
)
