"""The requests RFC 9112 says to refuse that httptools (llhttp) lets through.

llhttp refuses most ambiguous framing on its own, answered 400 with the connection closed:
Content-Length with Transfer-Encoding, a repeated, listed, signed or non-numeric Content-Length,
a repeated `chunked`, bad chunk sizes and extensions, whitespace before a colon, obs-fold, bare
CR or LF, invalid field names (`tests/test_framing.py` holds each case). What it lets through:

- an HTTP/1.1 request without Host, any request with more than one, or with an invalid one
  (§3.2): 400;
- Transfer-Encoding in an HTTP/1.0 request, whose framing is then faulty (§6.1): 400;
- a transfer coding before the final `chunked` (`gzip, chunked`): framed, but the body would
  reach the app still coded; 501, as §6.1 says for a coding the server does not implement;
- one whose last coding is not `chunked` (§6.3): llhttp refuses it, but only once uvicorn has
  started the app on the request; refused here before that.

Host is checked as its header is parsed; the rest once the headers are in, only for a request
that lacks one Host or has a Transfer-Encoding (`refusal`), so a plain request pays nothing more.
"""

from __future__ import annotations

import functools
import re

# `uri-host [":" port]`: a name, an IPv4 address or an [IP literal], then trailing whitespace
# (llhttp strips the leading one only). No space, "/", "@" (userinfo), "?" or "#".
HOST = re.compile(rb"[A-Za-z0-9._~%!$&'()*+,;=:\[\]-]*[ \t]*")


# A worker sees few Host values: each is matched once, not once per request.
@functools.lru_cache(maxsize=256)
def valid_host(value: bytes) -> bool:
    return HOST.fullmatch(value) is not None


def refusal(hosts: int, codings: bytes | None, version: str) -> tuple[int, str] | None:
    """The status and reason to refuse a request with, or None: `hosts` counts its Host header
    lines, `codings` is its Transfer-Encoding values joined by commas, `version` "1.0" or "1.1"."""
    if hosts > 1:
        return 400, "More than one Host header."
    if hosts == 0 and version == "1.1":
        return 400, "Missing Host header."
    if codings is None:
        return None
    if version == "1.0":
        return 400, "Transfer-Encoding in an HTTP/1.0 request."
    *others, last = (coding.strip().lower() for coding in codings.split(b","))
    if last != b"chunked":
        return 400, "Transfer-Encoding of a request must end with chunked."
    if others:
        return 501, "Transfer codings other than chunked are not implemented."
    return None
