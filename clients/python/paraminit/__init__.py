"""paraminit: deterministic, framework-exact initial weights for models as they are.

The service computes every value; this package describes a model as a request
(:mod:`paraminit.torch`, :mod:`paraminit.keras`, :mod:`paraminit.flax`), sends it
(:class:`Client`), and writes the streamed answer into the model's own storage.

Framework submodules are imported on demand so that ``import paraminit`` needs only numpy,
safetensors and httpx.
"""

from ._client import DEFAULT_URL, Client, ParaminitError
from ._stream import TensorInfo, read_safetensors

__all__ = ["Client", "ParaminitError", "DEFAULT_URL", "TensorInfo", "read_safetensors"]
__version__ = "0.1.0"
