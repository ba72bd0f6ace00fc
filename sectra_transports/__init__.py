"""Transports: one small module per transport, chosen by what you import.

* :mod:`sectra_transports.urllib3`: blocking, pooled; ``from sectra_transports.urllib3 import SectraClient``.

Each wraps the same core operations (:mod:`sectra_core.operations`), so both clients have the same
methods, arguments and return types.
"""
