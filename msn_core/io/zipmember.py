"""One member of a zip, decompressed as a stream whose output is bounded by the bytes it actually
produces, not by what the zip's headers claim: a member may yield at most the size its central
directory declares (which the caller has already checked against its caps), so a small member that
inflates to gigabytes (a zip bomb, whatever its compression method) is refused after at most one
chunk more than it declared, with its memory never allocated."""

from __future__ import annotations

import bz2
import lzma
import struct
import zipfile
import zlib

from msn_core.errors import InputError

CHUNK = 64 * 1024  # compressed bytes read at a time
METHODS = {
    zipfile.ZIP_STORED: "stored",
    zipfile.ZIP_DEFLATED: "deflate",
    zipfile.ZIP_BZIP2: "bzip2",
    zipfile.ZIP_LZMA: "lzma",
}
_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature ... file name length, extra field length


def safe_member(name: str) -> bool:
    """A relative member path that stays inside the archive (no absolute path, drive or '..')."""
    if name.startswith(("/", "\\")) or "\\" in name or (len(name) > 1 and name[1] == ":"):
        return False
    return ".." not in name.split("/")


def read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, where: str, prefix: int | None = None) -> bytes:
    """The bytes of ``info``, checked against its declared size and CRC. ``prefix``: only the
    first ``prefix`` bytes (enough to read an image header; not CRC-checked). ``where`` names the
    member in messages."""
    if info.flag_bits & 0x1:
        raise InputError(f"{where} is encrypted; accepted are zips without a password")
    if info.compress_type not in METHODS:
        raise InputError(
            f"{where} uses compression method {info.compress_type}; accepted: {', '.join(METHODS.values())}"
        )
    want = info.file_size if prefix is None else min(prefix, info.file_size)
    with open(zf.filename, "rb") as fh:  # type: ignore[arg-type]
        fh.seek(info.header_offset)
        head = fh.read(_LOCAL_HEADER.size)
        if len(head) < _LOCAL_HEADER.size or head[:4] != b"PK\x03\x04":
            raise InputError(f"{where}: its local header is missing or damaged")
        _, name_len, extra_len = _LOCAL_HEADER.unpack(head)
        fh.seek(name_len + extra_len, 1)
        data = _inflate(fh, info, want, where)
    if prefix is not None:
        return data[:want]
    if len(data) > info.file_size:
        raise InputError(
            f"{where} inflates to more than the {info.file_size} bytes its header declares "
            "(a zip bomb or a damaged zip); refused"
        )
    if len(data) < info.file_size:
        raise InputError(f"{where} is truncated: {len(data)} of its {info.file_size} bytes")
    if zlib.crc32(data) != info.CRC:
        raise InputError(f"{where}: bad CRC (the member is damaged)")
    return data


def _inflate(fh, info: zipfile.ZipInfo, want: int, where: str) -> bytes:
    """Up to ``want + 1`` bytes of the member's data (one more than wanted shows it is longer)."""
    left = info.compress_size

    def raw(n: int = CHUNK) -> bytes:
        nonlocal left
        data = fh.read(max(0, min(n, left)))
        left -= len(data)
        return data

    out = bytearray()
    method = info.compress_type
    try:
        if method == zipfile.ZIP_STORED:
            while len(out) <= want and (data := raw(want + 1 - len(out))):
                out += data
            return bytes(out)
        if method == zipfile.ZIP_DEFLATED:
            dec = zlib.decompressobj(-15)
            pending = b""
            while len(out) <= want and not dec.eof:
                pending = pending or raw()
                if not pending:
                    break
                out += dec.decompress(pending, want + 1 - len(out))
                pending = dec.unconsumed_tail
            return bytes(out)
        if method == zipfile.ZIP_LZMA:
            head = raw(4)
            if len(head) < 4:
                raise InputError(f"{where}: its lzma header is missing")
            props = raw(struct.unpack("<H", head[2:4])[0])
            filt = lzma._decode_filter_properties(lzma.FILTER_LZMA1, props)  # as zipfile reads it
            dec = lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=[filt])
        else:
            dec = bz2.BZ2Decompressor()
        while len(out) <= want and not dec.eof:
            data = raw() if dec.needs_input else b""
            if dec.needs_input and not data:
                break
            out += dec.decompress(data, want + 1 - len(out))
        return bytes(out)
    except (OSError, EOFError, ValueError, lzma.LZMAError, zlib.error) as exc:
        raise InputError(f"{where} cannot be decompressed ({exc})") from exc
