"""Kept for the import path: ``hyperplane.functions`` is :mod:`hyperplane.lambda_service`.

Code that imports ``from hyperplane.functions import LambdaService`` (and every other name this
module exported) keeps working; new code imports :mod:`hyperplane.lambda_service`.
"""

from __future__ import annotations

from hyperplane.lambda_service import *  # noqa: F401,F403 - every public name, as before
from hyperplane.lambda_service import __all__ as __all__  # noqa: F401
