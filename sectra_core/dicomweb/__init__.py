"""DICOMweb, free of I/O: QIDO-RS queries, DICOM JSON (msgspec), WADO-RS and streamed STOW-RS.

The flows of :mod:`.transactions` are driven by ``DicomWebClient`` (blocking) and ``AsyncDicomWebClient``
(trio) of :mod:`sectra_transports.urllib3` and :mod:`sectra_transports.trio`, on the same transports, retries, proxy, timeouts and
TLS rules as the IA-API clients (docs/dicomweb.md).
"""

from __future__ import annotations

from .exceptions import DicomJsonError, DicomWebError, NotDicomJsonError, StowError, StowFailure, StowFileError
from .transactions import DicomWebState, retrieve_instances, retrieve_metadata, search, store
from .json import Attribute, Dataset, decode_dataset, decode_datasets, sequence, string, strings, tag
from .query import Level, Query, search_path
from .stow import StowBody, StowInstance, StowResult, parse_stow_answer, read_instance
from .wado import instance_path, split_instances

__all__ = [
    "Attribute", "Dataset", "DicomJsonError", "DicomWebError", "DicomWebState", "Level", "NotDicomJsonError",
    "Query", "StowBody", "StowError", "StowFailure", "StowFileError", "StowInstance", "StowResult",
    "decode_dataset", "decode_datasets", "instance_path", "parse_stow_answer", "read_instance", "retrieve_instances",
    "retrieve_metadata", "search", "search_path", "sequence", "split_instances", "store", "string", "strings", "tag",
]
