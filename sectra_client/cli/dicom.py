"""``sectra dicom stow FILE... --url URL`` and ``sectra dicom search --url URL [--patient-id ...]``:
a DICOMweb archive (Orthanc, dcm4chee, a PACS's DICOMweb root, the mock's ``/dicomweb``) from a
shell, with :class:`~sectra_transports.urllib3.DicomWebClient` (docs/dicomweb.md).

Credentials come from the environment or the options and are never printed: HTTP Basic with
``--username`` (password from ``SECTRA_DICOMWEB_PASSWORD`` or a hidden prompt) or a bearer token
(``SECTRA_DICOMWEB_TOKEN``, or ``--token``).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, TextIO

import msgspec

from sectra_core.dicomweb import Query, StowFileError, read_instance

from ._common import EXIT_OK, UsageError, _ask_password, env_default, positive_float

__all__ = ["add_commands", "cmd_stow", "cmd_search"]

_DEFAULT_TIMEOUT = 60.0


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default=env_default("SECTRA_DICOMWEB_URL"),
                        help="the DICOMweb root, e.g. https://pacs/dicom-web (env SECTRA_DICOMWEB_URL)")
    parser.add_argument("--username", default=env_default("SECTRA_DICOMWEB_USERNAME"),
                        help="HTTP Basic user; the password comes from env SECTRA_DICOMWEB_PASSWORD or a hidden prompt")
    parser.add_argument("--token", help="bearer token (prefer env SECTRA_DICOMWEB_TOKEN: options show in the process list)")
    parser.add_argument("--timeout", type=positive_float, default=_DEFAULT_TIMEOUT, metavar="SECONDS",
                        help="give up when connecting (at most 10 s) or waiting for the server's next bytes takes longer")
    parser.add_argument("--proxy", default=None, metavar="URL", help="HTTP proxy; '' for none (default: env HTTPS_PROXY...)")
    parser.add_argument("--allow-http", action="store_true", help="plain http to a non-loopback host (default: https)")
    parser.add_argument("--ca-bundle", default=env_default("SECTRA_CA_BUNDLE"), help="CA bundle for the server's certificate")
    parser.add_argument("--insecure", action="store_true", help="do not verify TLS certificates (testing only)")


def add_commands(sub: Any) -> None:
    """Add ``sectra dicom stow`` and ``sectra dicom search`` to the CLI's sub-commands."""
    group = sub.add_parser("dicom", help="a DICOMweb archive: store files (STOW-RS), search (QIDO-RS)")
    commands = group.add_subparsers(dest="dicom_command", required=True, parser_class=type(group))
    stow = commands.add_parser("stow", help="store DICOM files (or the DICOM files of folders) with STOW-RS")
    stow.add_argument("files", nargs="+", metavar="FILE", help="DICOM Part 10 files, or folders holding them")
    _options(stow)
    stow.set_defaults(func=cmd_stow)
    search = commands.add_parser("search", help="search studies, series or instances with QIDO-RS (DICOM JSON out)")
    search.add_argument("--level", choices=("studies", "series", "instances"), default="studies", help="what to list")
    search.add_argument("--patient-id", help="PatientID to match (wildcards * and ? allowed)")
    search.add_argument("--accession-number", help="AccessionNumber to match")
    search.add_argument("--study", metavar="UID", help="StudyInstanceUID: series and instances within it")
    search.add_argument("--series", metavar="UID", help="SeriesInstanceUID: instances within it (with --study)")
    search.add_argument("--modality", action="append", default=[], help="ModalitiesInStudy (repeatable), e.g. SM, ANN")
    search.add_argument("--include", action="append", default=[], metavar="FIELD", help="includefield (repeatable; 'all')")
    search.add_argument("--limit", type=int, help="at most this many answers")
    search.add_argument("--offset", type=int, help="skip this many answers")
    _options(search)
    search.set_defaults(func=cmd_search)


def _client(args: argparse.Namespace) -> Any:
    from sectra_transports.urllib3 import DicomWebClient

    if not args.url:
        raise UsageError("no DICOMweb root: pass --url or set SECTRA_DICOMWEB_URL")
    options: dict[str, Any] = {
        "allow_http": args.allow_http, "connect_timeout": min(args.timeout, 10.0), "read_timeout": args.timeout,
    }
    if args.proxy is not None:
        options["proxy"] = args.proxy
    if args.insecure:
        options["verify"] = False
    elif args.ca_bundle:
        options["verify"] = args.ca_bundle
    token = args.token or os.environ.get("SECTRA_DICOMWEB_TOKEN")
    if args.username:
        if token:
            raise UsageError("--username or a token, not both")
        password = os.environ.get("SECTRA_DICOMWEB_PASSWORD")
        if password is None:
            password = _ask_password(args.username)
        return DicomWebClient(args.url, username=args.username, password=password, **options)
    return DicomWebClient(args.url, token=token, **options)


def _files(names: list[str], err: TextIO) -> list[Path]:
    """The files to send: each FILE as given (refused if not DICOM), a folder's DICOM files
    (others skipped, and said so on stderr)."""
    out: list[Path] = []
    for name in names:
        path = Path(name)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file())
            for candidate in found:
                try:
                    read_instance(candidate)
                except StowFileError as exc:
                    err.write(f"sectra: skipped {exc}\n")
                    continue
                out.append(candidate)
        elif path.is_file():
            out.append(path)
        else:
            raise UsageError(f"{name}: no such file or folder")
    if not out:
        raise UsageError("no DICOM files to send")
    return out


def cmd_stow(args: argparse.Namespace, out: TextIO) -> int:
    """Send the files in one STOW-RS request; print what the server confirmed as JSON."""
    files = _files(args.files, sys.stderr)
    with _client(args) as client:
        result = client.store(files)
    out.write(msgspec.json.format(msgspec.json.encode({"stored": result.stored, "count": len(result.stored)}), indent=2).decode() + "\n")
    return EXIT_OK


def cmd_search(args: argparse.Namespace, out: TextIO) -> int:
    """Print the QIDO-RS answer as a DICOM JSON array."""
    query = Query(
        patient_id=args.patient_id, accession_number=args.accession_number, modalities=args.modality,
        limit=args.limit, offset=args.offset, includefield=args.include,
    )
    with _client(args) as client:
        found = client.search(args.level, query, study_uid=args.study, series_uid=args.series)
    out.write(msgspec.json.format(msgspec.json.encode(found), indent=2).decode() + "\n")
    return EXIT_OK
