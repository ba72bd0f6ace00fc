"""What ``sectra mock serve`` and ``sectra app check`` share: a folder of slides for the mock, the
warning for a mock reachable from other machines, invoking an app and printing what it answered."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from sectra_core.errors import ConfigurationError, SectraError

from ._common import UsageError

__all__ = ["slides_from_dir", "warn_if_exposed", "load_slides_dir", "app_url", "invoke_app", "print_check"]


def slides_from_dir(folder: Path, refused: list[str] | None = None) -> dict[str, list[Path]]:
    """A folder of slides: each sub-folder is a slide (its files), each top-level file a one-file
    slide named by its stem. Hidden entries are ignored.

    Symbolic links are resolved, and whatever resolves outside ``folder`` (a link to ``/etc``, a
    sub-folder linked elsewhere) is left out, a line saying so appended to ``refused``: the mock
    serves only what lies in the folder it was given. The paths returned are the resolved ones,
    so a link changed later cannot lead out either.
    """
    if not folder.is_dir():
        raise ConfigurationError(f"{folder} is not a folder")
    root = folder.resolve()

    def inside(entry: Path) -> Path | None:
        try:
            target = entry.resolve(strict=True)
            target.relative_to(root)
        except (OSError, RuntimeError, ValueError):  # a dangling or looping link, or one out of the folder
            if refused is not None:
                refused.append(f"{entry.relative_to(folder)} is a link that leads outside {folder.name}/ "
                               "(or nowhere): not served; copy the file into the folder instead")
            return None
        return target

    slides: dict[str, list[Path]] = {}
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        target = inside(entry)
        if target is None:
            continue
        if target.is_dir():
            files = [t for t in (inside(p) for p in sorted(entry.iterdir()) if not p.name.startswith("."))
                     if t is not None and t.is_file()]
            if files:
                slides[entry.name] = files
        elif target.is_file():
            slides[entry.stem] = [target]
    return slides


def warn_if_exposed(host: str, err: TextIO) -> None:
    """Warn on stderr when a mock listens beyond loopback: it is a development tool, not a
    security boundary (issue 12, hole 1)."""
    if host.lower() == "localhost":
        return
    try:
        if ipaddress.ip_address(host.strip("[]")).is_loopback:
            return
    except ValueError:
        pass  # a host name: assume it is reachable from elsewhere
    err.write(
        f"sectra: warning: the mock listens on {host}, reachable from other machines. It is a development "
        "tool, not a security boundary: whoever reaches it and knows its token (default dev-token) reads "
        "and writes everything it holds. Keep it on 127.0.0.1 unless you must, and choose a random token.\n"
    )
    err.flush()


def load_slides_dir(server: Any, folder: str | None, out: TextIO) -> dict[str, list[Path]]:
    """Add a ``--slides-dir`` to ``server`` and say, per slide, what the mock made of it."""
    refused: list[str] = []
    slides = slides_from_dir(Path(folder), refused) if folder else {}
    for line in refused:
        server.warn(f"--slides-dir: {line}")
        out.write(f"  warning: --slides-dir: {line}\n")
    for slide_id, files in slides.items():
        told = len(server.warnings)
        info = server.add_slide_files(slide_id, files)
        for warning in server.warnings[told:]:  # a file without a resolution, one OpenSlide refused...
            out.write(f"  warning: {warning}\n")
        size = f"{info.image_size.width}x{info.image_size.height}"
        if info.station_name == "SYNTHETIC":
            out.write(f"  {slide_id}: {len(files)} file(s), not a slide OpenSlide reads: SYNTHETIC metadata and tiles\n")
        else:
            mime = info.file_format.mime_type if info.file_format else "?"
            out.write(f"  {slide_id}: {len(files)} file(s), {mime} {size} px, {info.microns_per_pixel} um/px\n")
    return slides


def app_url(url: str) -> str:
    """An app's registered URL, refused without a scheme (the mock calls exactly that URL)."""
    if "://" not in url:
        raise UsageError(
            f"{url!r} has no scheme: give the app's registered URL in full, e.g. http://{url} "
            "(the mock calls exactly that URL)"
        )
    return url


def invoke_app(server: Any, url: str, slide_ids: Sequence[str], action: str, out: TextIO) -> bool:
    """``mock serve --invoke``: per slide, fire ``action`` at the app behind ``url`` (its
    registration says its id and input template) and print the stored result or the problems.
    True when every invocation went through; the mock serves on either way."""
    from sectra_core.app.origins import origin_of

    missing = [] if server.state.invent_slides else [sid for sid in slide_ids if not server.state.has_slide(sid)]
    if missing:
        held = ", ".join(sl.info.id for sl in server.state.slides())
        out.write(f"PROBLEM: --slide {', '.join(missing)}: no such slide in this mock (it holds {held}); "
                  "nothing invoked\n")
        return False
    origin = origin_of(server.callback_info().url)
    ok = True
    for slide_id in slide_ids:
        out.write(f"invoking {url} ({action}) on slide {slide_id}\n")
        out.flush()
        if action == "create":
            report = server.check_app(url, slide_id=slide_id)
        else:  # an image notification: the registration names the application
            report = server.check_app(url, slide_id=None)
            if report.registration is not None:
                try:
                    server.notify(url, slide_id, report.registration.application_id)
                    out.write(f"notification for slide {slide_id} accepted\n")
                except SectraError as exc:
                    report.problems.append(f"notification: {type(exc).__name__}: {exc}")
        print_check(report, origin, out, mock_name="this mock", port_option="--port")
        ok = ok and report.ok
    return ok


def print_check(report: Any, origin: str, out: TextIO, *, mock_name: str, port_option: str) -> None:
    """Print an app check's findings, with the fix for a callback origin the app does not trust."""
    from sectra_core.app.origins import TRUSTED_CALLBACKS_ENV

    if report.registration is not None:
        reg = report.registration
        out.write(f"registration: {reg.application_id} \"{reg.display_name}\" by {reg.manufacturer}, "
                  f"input {reg.input_template.type}\n")
    if report.info is not None:
        out.write(f"info: apiVersion {report.info.api_version}, softwareVersion {report.info.software_version}\n")
    if report.answer is not None:
        out.write(f"create answered with stored result {report.answer.id}: {report.answer.display_result}\n")
    for warning in report.warnings:
        out.write(f"WARNING: {warning}\n")
    for problem in report.problems:
        out.write(f"PROBLEM: {problem}\n")
        if problem.startswith(("create invocation:", "notification:")) and "HTTP 403" in problem:
            # The app refused the mock as a callback origin, as it should refuse any origin it
            # was not told to trust (docs/app-guide.md, "Trusted callbacks").
            out.write(
                f"HINT: the app does not trust {mock_name} at {origin}; start the app with "
                f"{TRUSTED_CALLBACKS_ENV}={origin} and rerun with {port_option} {origin.rsplit(':', 1)[1]}\n"
            )
    out.flush()
