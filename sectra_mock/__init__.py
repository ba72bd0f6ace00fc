"""sectra_mock: a mock Sectra Pathology server for developing and testing IA-API apps offline."""

from .payloads import DiskFile, FileSource, SyntheticFile
from .server import MockSectraServer
from .state import MockState, plausible_image_info

__all__ = ["MockSectraServer", "MockState", "plausible_image_info", "DiskFile", "FileSource", "SyntheticFile"]
