"""docs/dicom.md: its Python example, run as written against the mock, writes an ANN and an SR that
highdicom reads back (issue #30)."""

from __future__ import annotations

import re
from pathlib import Path

import highdicom as hd
import pydicom
import pytest

from sectra_mock.server import MockSectraServer
from sectra_transports.urllib3 import SectraClient

from .conftest import every_shape

DOC = (Path(__file__).resolve().parents[2] / "docs" / "dicom.md").read_text()


def test_the_example_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    [code, *_] = re.findall(r"```python\n(.*?)```", DOC, re.S)
    server = MockSectraServer(token="doc-token")
    with server.run(port=0):
        with SectraClient(url=server.url, token="doc-token") as client:
            stored = client.create_results("my-app", every_shape())
        monkeypatch.chdir(tmp_path)
        exec(compile(code, "docs/dicom.md", "exec"), {"URL": server.url, "TOKEN": "doc-token", "result_id": stored.id})
    ann = hd.ann.MicroscopyBulkSimpleAnnotations.from_dataset(pydicom.dcmread(tmp_path / "result-ann.dcm"))
    assert [g.label for g in ann.get_annotation_groups()][:2] == ["tumour", "tumour (holes)"]
    [group] = hd.sr.srread(tmp_path / "result-sr.dcm").content.get_image_measurement_groups()
    assert group.tracking_identifier == f"result {stored.id}"
    assert len(list((tmp_path / "slide").glob("*.dcm"))) == 4  # the slide's files, downloaded as the page says
