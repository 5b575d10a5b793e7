"""dlt_lib: the small library behind the executable Deep Learning Tutorials book.

One module per concept:

- :mod:`dlt_lib.backend`    which PyTensor mode compiles the graphs (C, Numba, JAX)
- :mod:`dlt_lib.data`       MNIST and Fashion-MNIST: download, cache, embedded sample, shared variables
- :mod:`dlt_lib.losses`     0-1 loss, negative log-likelihood, L1/L2 penalties
- :mod:`dlt_lib.models`     logistic regression, hidden layer, MLP
- :mod:`dlt_lib.updates`    SGD and its variants as update lists
- :mod:`dlt_lib.training`   the early-stopping trainer
- :mod:`dlt_lib.search`     choosing hyper-parameters on the validation set (Optuna decides, Dask runs the trials)
- :mod:`dlt_lib.checkpoint` safe saving and loading of parameters
- :mod:`dlt_lib.plot`       learning curves, digit tiles, confusion matrices
- :mod:`dlt_lib.widgets`    optimizer trajectories on 2-D surfaces, and an interactive explorer
- :mod:`dlt_lib.timing`     honest side-by-side timings for the chapters
- :mod:`dlt_lib.check`      checkers for the exercises (they run the reader's code as untrusted)
- :mod:`dlt_lib.homework`   the chapters as nbgrader assignments; ``python -m dlt_lib.homework``
- :mod:`dlt_lib.notebook`   numbers from cells into the book's prose (glue)
- :mod:`dlt_lib.cli`        ``python -m dlt_lib train|evaluate|search``

Lower level: :mod:`dlt_lib.download` (mirrors, checksums, cache) and
:mod:`dlt_lib.formats` (IDX files, the safe unpickler for ``mnist.pkl.gz``).
"""

__version__ = "0.1.0"

# Configure PyTensor (float32, a BLAS for the C linker) before any submodule imports it.
from dlt_lib import backend  # noqa: E402,F401
