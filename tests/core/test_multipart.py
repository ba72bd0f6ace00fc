"""The sans-IO slide-file decoder on canned bytes: framing, every split, truncation, hostile input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sectra_core.errors import DownloadError, MultipartError, ResponseTooLargeError, SectraError
from sectra_core.multipart import (
    NEED_DATA,
    Finished,
    MultipartDecoder,
    PartData,
    PartEnded,
    PartStarted,
    SingleFileDecoder,
    files_decoder,
)

B = "b0undary"


def body(parts: list[tuple[str, bytes]], boundary: str = B, preamble: bytes = b"", epilogue: bytes = b"") -> bytes:
    """Sectra's framing (spec §7)."""
    out = preamble
    for name, data in parts:
        out += (f"--{boundary}\r\nContent-Disposition: attachment; filename=\"{name}\"\r\n"
                f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode() + epilogue


def decode(decoder: MultipartDecoder | SingleFileDecoder, chunks: list[bytes]) -> list[tuple[str | None, bytes]]:
    files: list[tuple[str | None, bytes]] = []
    finished = False

    def drain() -> None:
        nonlocal finished
        while (ev := decoder.next_event()) is not NEED_DATA:
            if isinstance(ev, PartStarted):
                files.append((ev.filename, b""))
            elif isinstance(ev, PartData):
                name, data = files[-1]
                files[-1] = (name, data + bytes(ev.data))
            elif isinstance(ev, Finished):
                finished = True
            else:
                assert isinstance(ev, PartEnded)

    for chunk in chunks:
        if chunk:  # b"" means end of stream
            decoder.receive_data(chunk)
            drain()
    decoder.receive_data(b"")
    drain()
    assert finished
    return files


TRICKY = [
    ("i0000,0000b.dcm", bytes(range(256)) * 40),
    ("empty.bin", b""),
    ("crlf.bin", b"\r\n--b0undar\r\n--b0undarX\r\n-b0undary\r\r\n--"),  # near-delimiters inside data
    ("tail.bin", b"ends with CR\r"),
]


def test_whole_body_in_one_chunk() -> None:
    assert decode(MultipartDecoder(B), [body(TRICKY)]) == TRICKY


@pytest.mark.parametrize("size", [1, 2, 3, 7, 13, 64, 1000])
def test_every_chunk_size(size: int) -> None:
    raw = body(TRICKY)
    chunks = [raw[i : i + size] for i in range(0, len(raw), size)]
    assert decode(MultipartDecoder(B), chunks) == TRICKY


def test_every_two_way_split() -> None:
    raw = body(TRICKY[1:])  # small body so all splits stay fast
    for i in range(len(raw) + 1):
        assert decode(MultipartDecoder(B), [raw[:i], raw[i:]]) == TRICKY[1:], i


@settings(max_examples=200, deadline=None)
@given(
    files=st.lists(st.tuples(st.from_regex(r"[a-z0-9,]{1,12}\.dcm", fullmatch=True), st.binary(max_size=300)), min_size=1, max_size=4, unique_by=lambda f: f[0]),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=12),
)
def test_random_splits_are_byte_identical(files: list[tuple[str, bytes]], cuts: list[int]) -> None:
    raw = body(files)
    points = sorted({c % (len(raw) + 1) for c in cuts})
    chunks = [raw[a:b] for a, b in zip([0, *points], [*points, len(raw)])]
    assert decode(MultipartDecoder(B), chunks) == files


def decode_reusing(decoder: MultipartDecoder | SingleFileDecoder, raw: bytes, size: int) -> list[tuple[str | None, bytes]]:
    """Feed ``raw`` through one buffer of ``size`` bytes, refilled (and scribbled over) for every chunk.

    The buffer is larger than the chunk on purpose: only the first ``len(piece)`` bytes are body.
    """
    buffer = bytearray(size + 7)
    files: list[tuple[str | None, bytes]] = []

    def drain() -> None:
        while (ev := decoder.next_event()) is not NEED_DATA:
            if isinstance(ev, PartStarted):
                files.append((ev.filename, b""))
            elif isinstance(ev, PartData):
                files[-1] = (files[-1][0], files[-1][1] + bytes(ev.data))

    for i in range(0, len(raw), size):
        piece = raw[i : i + size]
        buffer[: len(piece)] = piece
        decoder.receive_data(buffer, len(piece))
        drain()
        # Anything the decoder kept a reference to, or read past ``len(piece)``, is now garbage
        # full of delimiters.
        buffer[:] = (f"\r\n--{B}\xff".encode() * len(buffer))[: len(buffer)]
    decoder.receive_data(b"")
    drain()
    return files


@pytest.mark.parametrize("size", [1, 2, 5, 13, 40, 64, 100, 1000])
def test_one_refilled_buffer_every_chunk_size(size: int) -> None:
    files = [*TRICKY, ("plain.bin", b"x" * 3000)]
    assert decode_reusing(MultipartDecoder(B), body(files), size) == files


@settings(max_examples=200, deadline=None)
@given(
    files=st.lists(st.tuples(st.from_regex(r"[a-z0-9,]{1,12}\.dcm", fullmatch=True), st.binary(max_size=300)), min_size=1, max_size=4, unique_by=lambda f: f[0]),
    size=st.integers(min_value=1, max_value=400),
)
def test_one_refilled_buffer_gives_the_same_files(files: list[tuple[str, bytes]], size: int) -> None:
    assert decode_reusing(MultipartDecoder(B), body(files), size) == files
    data = b"".join(d for _, d in files)
    assert decode_reusing(SingleFileDecoder("f", len(data)), data, size) == [("f", data)]


@settings(max_examples=300, deadline=None)
@given(data=st.binary(min_size=1, max_size=600), pos=st.integers(min_value=0), junk=st.binary(max_size=20))
def test_corruptions_raise_only_sdk_errors(data: bytes, pos: int, junk: bytes) -> None:
    raw = bytearray(body([("a.bin", data), ("b.bin", data[::-1])]))
    p = pos % len(raw)
    raw[p : p + len(junk)] = junk
    try:
        decode(MultipartDecoder(B), [bytes(raw)])
    except SectraError:
        pass


def test_preamble_epilogue_and_quoted_boundary() -> None:
    raw = body(TRICKY, boundary="a b:c", preamble=b"This is a preamble\r\n", epilogue=b"trailing junk")
    decoder = files_decoder({"content-type": 'multipart/related; type="application/dicom"; boundary="a b:c"'})
    assert decode(decoder, [raw]) == TRICKY


def test_filename_star_and_escaped_quotes() -> None:
    raw = (f"--{B}\r\nContent-Disposition: attachment; filename=\"fallback.txt\"; "
           f"filename*=UTF-8''r%C3%A9sum%C3%A9%3B.dcm\r\n\r\nX\r\n"
           f"--{B}\r\ncontent-disposition: attachment; filename=\"a \\\"q\\\";b.dcm\"\r\n\r\nY\r\n"
           f"--{B}--\r\n").encode()
    assert decode(MultipartDecoder(B), [raw]) == [("résumé;.dcm", b"X"), ('a "q";b.dcm', b"Y")]


def test_part_without_headers_has_no_filename() -> None:
    raw = f"--{B}\r\n\r\nDATA\r\n--{B}--\r\n".encode()
    assert decode(MultipartDecoder(B), [raw]) == [(None, b"DATA")]


@pytest.mark.parametrize("cut", [5, 30, 80, -12, -3])
def test_truncated_stream_is_an_error(cut: int) -> None:
    raw = body(TRICKY)[:cut]
    with pytest.raises(MultipartError):
        decode(MultipartDecoder(B), [raw])


def test_truncation_names_the_file() -> None:
    raw = body([("big.dcm", b"x" * 1000)])[:500]
    with pytest.raises(MultipartError, match="big.dcm"):
        decode(MultipartDecoder(B), [raw])


def test_wrong_boundary_and_missing_boundary() -> None:
    with pytest.raises(MultipartError, match="no multipart boundary"):
        decode(MultipartDecoder("other"), [body(TRICKY)])
    with pytest.raises(MultipartError, match="without a boundary"):
        files_decoder({"content-type": "multipart/related"})


def test_huge_headers_are_refused() -> None:
    raw = f"--{B}\r\nX-Junk: ".encode() + b"a" * 20000
    with pytest.raises(MultipartError, match="headers exceed"):
        decode(MultipartDecoder(B), [raw])


def test_data_after_end_and_garbage_after_delimiter() -> None:
    d = MultipartDecoder(B)
    d.receive_data(body([]))
    d.receive_data(b"")
    with pytest.raises(MultipartError, match="after the end"):
        d.receive_data(b"more")
    with pytest.raises(MultipartError, match="after a multipart boundary"):
        decode(MultipartDecoder(B), [f"--{B}garbage\r\n\r\n".encode()])


def test_data_is_zero_copy_views() -> None:
    raw = body([("a.bin", b"x" * 100_000)])
    d = MultipartDecoder(B)
    d.receive_data(raw)
    events = []
    while (ev := d.next_event()) is not NEED_DATA:
        events.append(ev)
    data = [e for e in events if isinstance(e, PartData)]
    assert len(data) == 1 and isinstance(data[0].data, memoryview)


def test_single_file_checks_content_length() -> None:
    decoder = files_decoder({"content-type": "application/octet-stream",
                             "content-disposition": 'attachment; filename="slide.svs"', "content-length": "6"})
    assert decode(decoder, [b"abc", b"def"]) == [("slide.svs", b"abcdef")]
    short = SingleFileDecoder("slide.svs", size=10)
    with pytest.raises(MultipartError, match="6 of 10"):
        decode(short, [b"abcdef"])
    long = SingleFileDecoder("slide.svs", size=2)
    with pytest.raises(MultipartError, match="Content-Length"):
        decode(long, [b"abc"])
    assert decode(SingleFileDecoder("e", size=0), []) == [("e", b"")]


def test_encoded_bodies_are_refused() -> None:
    with pytest.raises(DownloadError, match="Content-Encoding 'gzip'"):
        files_decoder({"content-type": "application/octet-stream", "content-encoding": "gzip"})
    assert isinstance(files_decoder({"content-type": "application/octet-stream", "content-encoding": "identity"}),
                      SingleFileDecoder)


def test_the_part_count_is_capped() -> None:
    """A million tiny parts took a client to hundreds of MB (issue #12, hole 5): past
    ``max_parts`` the next part is refused before it is announced."""
    body = b"".join(b'--B\r\nContent-Disposition: attachment; filename="f%d"\r\n\r\nx\r\n' % i for i in range(4)) + b"--B--\r\n"
    assert len(decode(MultipartDecoder("B", max_parts=4), [body])) == 4
    decoder = MultipartDecoder("B", max_parts=3)
    with pytest.raises(ResponseTooLargeError, match="more than 3 parts"):
        decoder.receive_data(body)
    started = []
    while (event := decoder.next_event()) is not NEED_DATA:
        if isinstance(event, PartStarted):
            started.append(event.filename)
    assert started == ["f0", "f1", "f2"]


@pytest.mark.parametrize("length", ["²", "٣", "9" * 5000, "+1", "1_0", " "])
def test_part_content_length_must_be_ascii_digits(length: str) -> None:
    body = f'--B\r\nContent-Length: {length}\r\n\r\nx\r\n--B--\r\n'.encode()
    with pytest.raises(MultipartError, match="content-length header .* not a number of bytes"):
        MultipartDecoder("B").receive_data(body)
    with pytest.raises(MultipartError, match="content-length header"):
        files_decoder({"content-type": "application/octet-stream", "content-length": length})
