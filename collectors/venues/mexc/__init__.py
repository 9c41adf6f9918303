"""MEXC spot (exchange id ``mexc``): websocket API v3, protobuf pushes.

- :mod:`.protobuf`: a bounded wire-format reader/writer for the push messages (no generated code);
- :mod:`.client`: dialect and normaliser (frames, ``b64:`` capture of binary frames, REST book sync);
- :mod:`.simulator`: the loopback venue (JSON requests, binary protobuf pushes, ``/api/v3/depth``).
"""

from .client import MexcDialect

DIALECT_CLASS = MexcDialect

__all__ = ["DIALECT_CLASS", "MexcDialect"]
