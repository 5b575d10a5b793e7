"""Shared test set-up.

Importing dlt_lib first configures PyTensor (floatX=float32, OpenBLAS for the
C linker) before any test module imports pytensor itself.
"""

import dlt_lib  # noqa: F401
