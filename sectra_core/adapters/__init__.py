"""API-version adapters: what differs between IA-API versions, in one object per version.

An adapter owns, for its version: which endpoints exist, path templates, query parameter names,
version headers, and payload translation both ways. The client uses it to build requests and
decode answers; the mock uses the same object to build routes and read requests, so both sides
speak one wire. Built-in adapters (``v3.4``, ``v5.0``) register through the ``sectra`` plugin
hooks exactly like third-party ones.
"""

from ._base import INT_PARAMS, VersionAdapter, choose_adapter

__all__ = ["INT_PARAMS", "VersionAdapter", "choose_adapter"]
