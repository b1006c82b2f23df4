"""Whether audio and video bytes are whole files of the type their first bytes announce.

The first bytes (``media_types.sniff_av``) say what a file claims to be; this walks the
container from the first byte to the last and refuses what does not add up: a truncated file,
bytes after the end of the container (junk, or a second file smuggled behind the first), a
container without the parts every file of its kind has. Nothing is decoded.

- WAV: the RIFF size covers the file exactly; its chunks end where it ends; ``fmt `` comes
  before ``data``.
- AVI: the RIFF size covers the file (an OpenDML ``AVIX`` extension may follow it); its chunks
  end where it ends.
- MPEG: not walked here (a program stream has no length to check): FFmpeg must read it
  (``app.domain.media_probe``), as it must every AVI.
- MP4 / MOV / M4A: top-level boxes follow each other to the last byte (a box of size 0 only
  last); ``ftyp`` first, a ``moov`` somewhere.
- WEBM: an EBML header, then one Segment that ends with the file; inside it only Matroska's
  top-level elements (a Segment or Cluster of unknown size is walked element by element).
- MP3: an optional ID3v2 tag, then MPEG audio frames back to back to the end (an ID3v1 tag
  may close the file).
- OGG: pages back to back to the end, the first one opening a stream.
- FLAC: ``fLaC``, metadata blocks (STREAMINFO first) up to the last one, then frames; the last
  frame ends the file (its CRC-16 matches the bytes from its header to the end, and not
  already one byte earlier, as it would with zero bytes appended).
"""

from __future__ import annotations

import struct

Problem = str | None


def av_problem(content: bytes, content_type: str) -> Problem:
    """Why ``content`` is not a whole file of ``content_type`` (as sniffed), or None."""
    check = _CHECKS.get(content_type)
    if check is None:
        return None
    try:
        return check(content)
    except (struct.error, IndexError, ValueError):
        return "the file is truncated or malformed"


def _wav(data: bytes) -> Problem:
    (size,) = struct.unpack_from("<I", data, 4)
    if size + 8 != len(data):
        return "the RIFF size does not match the file's length"
    pos, seen = 12, []
    while pos < len(data):
        kind = data[pos : pos + 4]
        (chunk,) = struct.unpack_from("<I", data, pos + 4)
        pos += 8 + chunk + (chunk & 1)
        if pos > len(data) + (chunk & 1):
            return "a chunk runs past the end of the file"
        seen.append(kind)
    if b"fmt " not in seen or b"data" not in seen or seen.index(b"fmt ") > seen.index(b"data"):
        return "a WAV file needs a 'fmt ' chunk before its 'data' chunk"
    return None


def _avi(data: bytes) -> Problem:
    pos = 0
    while pos < len(data):
        if data[pos : pos + 4] != b"RIFF" or data[pos + 8 : pos + 12] not in (b"AVI ", b"AVIX"):
            return "its RIFF chunks do not run to the end of the file"
        (size,) = struct.unpack_from("<I", data, pos + 4)
        pos += 8 + size + (size & 1)
        if pos > len(data) + (size & 1):
            return "a RIFF chunk runs past the end of the file"
    return None


def _printable(kind: bytes) -> bool:
    return all(32 <= b < 127 or b == 0xA9 for b in kind)


def _mp4(data: bytes) -> Problem:
    pos, kinds = 0, []
    while pos < len(data):
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            (size,) = struct.unpack_from(">Q", data, pos + 8)
            header = 16
        elif size == 0:
            size = len(data) - pos
        if size < header or pos + size > len(data) or not _printable(kind):
            return "its boxes do not add up to the file (junk or a truncated box)"
        kinds.append(kind)
        pos += size
    if kinds[0] != b"ftyp" or b"moov" not in kinds:
        return "an MP4/MOV file needs 'ftyp' first and a 'moov' box"
    return None


# EBML (WEBM): element ids keep their length marker; sizes drop it.
_EBML, _SEGMENT, _CLUSTER = 0x1A45DFA3, 0x18538067, 0x1F43B675
_SEGMENT_CHILDREN = {
    0x114D9B74,  # SeekHead
    0x1549A966,  # Info
    0x1654AE6B,  # Tracks
    0x1C53BB6B,  # Cues
    _CLUSTER,
    0x1043A770,  # Chapters
    0x1254C367,  # Tags
    0x1941A469,  # Attachments
    0xEC,  # Void
    0xBF,  # CRC-32
}
_CLUSTER_CHILDREN = {0xE7, 0xA3, 0xA0, 0xA7, 0xAB, 0x5854, 0xAF, 0xEC, 0xBF}


def _vint(data: bytes, pos: int, *, keep_marker: bool) -> tuple[int, int, bool]:
    """(value, bytes used, all value bits set — EBML's 'unknown size')."""
    first = data[pos]
    length = 1
    while length <= 8 and not first & (0x80 >> (length - 1)):
        length += 1
    if length > 8:
        raise ValueError("bad EBML variable-length integer")
    value = first if keep_marker else first & (0xFF >> length)
    for byte in data[pos + 1 : pos + length]:
        value = (value << 8) | byte
    if pos + length > len(data):
        raise ValueError("truncated")
    unknown = not keep_marker and value == (1 << (7 * length)) - 1
    return value, length, unknown


def _element(data: bytes, pos: int) -> tuple[int, int, int | None]:
    """(id, payload start, payload end or None when the size is unknown)."""
    ident, used, _ = _vint(data, pos, keep_marker=True)
    size, size_used, unknown = _vint(data, pos + used, keep_marker=False)
    start = pos + used + size_used
    return ident, start, None if unknown else start + size


def _webm(data: bytes) -> Problem:
    ident, _, end = _element(data, 0)
    if ident != _EBML or end is None or end > len(data):
        return "the EBML header is broken"
    ident, start, seg_end = _element(data, end)
    if ident != _SEGMENT:
        return "a WEBM file needs one Segment after its header"
    if seg_end is not None:
        return None if seg_end == len(data) else "the Segment does not end with the file"
    pos, allowed, in_cluster = start, _SEGMENT_CHILDREN, False
    while pos < len(data):
        ident, child, child_end = _element(data, pos)
        if in_cluster and ident in _SEGMENT_CHILDREN:
            allowed, in_cluster = _SEGMENT_CHILDREN, False
        if ident not in allowed:
            return "an element that does not belong in a WEBM file (junk after the media?)"
        if child_end is None:
            if ident != _CLUSTER:
                return "only Segments and Clusters may have an unknown size"
            pos, allowed, in_cluster = child, _CLUSTER_CHILDREN, True
            continue
        if child_end > len(data):
            return "an element runs past the end of the file"
        pos = child_end
    return None


_MPEG_BITRATES = {  # kbit/s by (MPEG-1?, layer bits: 3 = I, 2 = II, 1 = III), then index
    (True, 3): (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 1): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 3): (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (False, 1): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_MPEG_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def _mpeg_frame_length(data: bytes, pos: int) -> int | None:
    header = int.from_bytes(data[pos : pos + 4], "big")
    version, layer = (header >> 19) & 3, (header >> 17) & 3  # layer bits: 3 = I, 1 = III
    bitrate_index, rate_index = (header >> 12) & 0xF, (header >> 10) & 3
    if header >> 21 != 0x7FF or version == 1 or layer == 0:
        return None
    if bitrate_index in (0, 15) or rate_index == 3:
        return None
    mpeg1, padding = version == 3, (header >> 9) & 1
    bitrate = _MPEG_BITRATES[mpeg1, layer][bitrate_index] * 1000
    rate = _MPEG_RATES[version][rate_index]
    if layer == 3:  # Layer I: 4-byte slots
        return (12 * bitrate // rate + padding) * 4
    per_frame = 144 if mpeg1 or layer == 2 else 72
    return per_frame * bitrate // rate + padding


def _mp3(data: bytes) -> Problem:
    pos, end = 0, len(data)
    if data[:3] == b"ID3":
        size = data[6:10]
        pos = 10 + (size[0] << 21 | size[1] << 14 | size[2] << 7 | size[3])
        pos += 10 if data[5] & 0x10 else 0
    if end - pos >= 128 and data[end - 128 : end - 125] == b"TAG":
        end -= 128
    frames = 0
    while pos < end:
        length = _mpeg_frame_length(data, pos) if pos + 4 <= end else None
        if not length or pos + length > end:
            return "its MPEG audio frames do not run to the end of the file"
        pos += length
        frames += 1
    return None if frames else "no MPEG audio frame"


def _ogg(data: bytes) -> Problem:
    pos, first = 0, True
    while pos < len(data):
        if data[pos : pos + 4] != b"OggS" or data[pos + 4] != 0:
            return "its Ogg pages do not run to the end of the file"
        if first and not data[pos + 5] & 0x02:
            return "the first Ogg page does not open a stream"
        segments = data[pos + 26]
        table = data[pos + 27 : pos + 27 + segments]
        if len(table) != segments:
            return "an Ogg page is truncated"
        pos += 27 + segments + sum(table)
        first = False
    return None if pos == len(data) else "an Ogg page runs past the end of the file"


def _crc8(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def _crc16_table() -> list[int]:
    table = []
    for n in range(256):
        crc = n << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x8005) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
        table.append(crc)
    return table


_CRC16 = _crc16_table()


def _crc16(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ _CRC16[(crc >> 8) ^ byte]
    return crc


_FLAC_LAST_FRAME_SEARCH = 1 << 20
"""How far back from the end the last frame's header is looked for (STREAMINFO's largest
frame size when it gives one)."""
_FLAC_MAX_CANDIDATES = 16
"""Frame headers tried as the last one (each costs a CRC-16 over the rest of the file)."""


def _flac(data: bytes) -> Problem:
    pos, last, first = 4, False, True
    (largest_frame,) = struct.unpack(">I", b"\0" + data[4 + 4 + 7 : 4 + 4 + 10])
    while not last:
        header = data[pos]
        last, kind = bool(header & 0x80), header & 0x7F
        (length,) = struct.unpack(">I", b"\0" + data[pos + 1 : pos + 4])
        if kind == 127 or (first and (kind != 0 or length != 34)):
            return "the FLAC metadata is broken (STREAMINFO must come first)"
        pos += 4 + length
        first = False
    if pos >= len(data) or data[pos] != 0xFF or data[pos + 1] & 0xFE != 0xF8:
        return "no FLAC frame after the metadata"
    # The last frame: a frame header (sync code, valid CRC-8) from which the CRC-16 of the
    # bytes up to the end is the file's last two bytes.
    window = min(largest_frame or _FLAC_LAST_FRAME_SEARCH, _FLAC_LAST_FRAME_SEARCH)
    start = max(pos, len(data) - window)
    at, tried = data.rfind(b"\xff", start, len(data) - 2), 0
    while at >= start and tried < _FLAC_MAX_CANDIDATES:
        if data[at + 1] & 0xFE == 0xF8 and _flac_header_ok(data, at):
            tried += 1
            # A frame followed by its CRC-16 has a CRC of 0, and stays 0 with zero bytes
            # appended: the file must reach 0 at its last byte and not one byte before.
            before_last = _crc16(data[at:-1])
            at_end = ((before_last << 8) & 0xFFFF) ^ _CRC16[(before_last >> 8) ^ data[-1]]
            if at_end == 0 and before_last != 0:
                return None
        at = data.rfind(b"\xff", start, at)
    return "the FLAC frames do not end with the file (junk after the audio?)"


def _flac_header_ok(data: bytes, at: int) -> bool:
    """A frame header at ``at`` whose CRC-8 matches (UTF-8 coded number, optional fields)."""
    pos = at + 4
    first = data[pos]
    extra = 0
    while extra < 7 and first & (0x80 >> extra):
        extra += 1
    pos += 1 + max(extra - 1, 0)
    block, rate = data[at + 2] >> 4, data[at + 2] & 0xF
    pos += {6: 1, 7: 2}.get(block, 0) + {12: 1, 13: 2, 14: 2}.get(rate, 0)
    return pos < len(data) and _crc8(data[at:pos]) == data[pos]


_CHECKS = {
    "audio/wav": _wav,
    "video/x-msvideo": _avi,
    "video/mp4": _mp4,
    "video/quicktime": _mp4,
    "audio/mp4": _mp4,
    "video/webm": _webm,
    "audio/mpeg": _mp3,
    "audio/ogg": _ogg,
    "audio/flac": _flac,
}
