#!/usr/bin/env python3
"""ClickHouse HTTP interface over the in-process ClickHouse engine (chdb).

Owns: serving the part of ClickHouse's HTTP protocol that the Rust `clickhouse` crate and curl users need,
on top of one persistent `chdb.session.Session(DATA_DIR)`. The engine is the real ClickHouse (same SQL,
same table engines, same formats, same error codes); this file only speaks the wire protocol:

- the query from the URL `query=` parameter and/or the request body (the two are joined by a newline, as
  ClickHouse does); `multipart/form-data` bodies whose fields are parameters (`query`, `param_*`, settings);
- `database` (or the X-ClickHouse-Database header), `default_format` (or X-ClickHouse-Format), `param_NAME`
  values for `{NAME:Type}` placeholders, and any other URL parameter as a setting for that request only;
- request bodies in chunked or fixed-length framing, optionally HTTP-compressed (Content-Encoding gzip,
  deflate or lz4) and/or in ClickHouse's native compressed-block framing (`decompress=1`);
- `INSERT ... FORMAT X` followed by data: the data is spooled to a temp file, then inserted by the engine from it;
- results in the requested format, compressed in native blocks with `compress=1`, or HTTP-compressed with
  `enable_http_compression=1` and an Accept-Encoding the adapter knows (gzip, deflate, lz4);
- errors as HTTP 4xx/5xx with `X-ClickHouse-Exception-Code` and a `Code: N. DB::Exception: ...` body;
- `/ping` and `/replicas_status` answer `Ok.`; `GET /` without a query answers `Ok.`.

Accepted and ignored (documented in docs/clickhouse-adapter.md): credentials (basic auth, X-ClickHouse-User
/Key headers, user/password parameters), session_id and friends (every request is session-less), readonly,
wait_end_of_query, buffer_size. Requests run in parallel on a pool of chdb connections to the same data
path (chdb >= 4.0: one connection per thread); it stays a test fixture, not a server.
"""

from __future__ import annotations

import argparse
import email.parser
import email.policy
import io
import json
import logging
import os
import re
import signal
import socket
import struct
import sys
import tempfile
import threading
import time
import uuid
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import BinaryIO, Iterator
from urllib.parse import parse_qsl, urlsplit

try:
    import chdb.session
    import lz4.block
    import lz4.frame
    from clickhouse_cityhash.cityhash import CityHash128
except ImportError as missing:  # pragma: no cover - exercised by hand on a machine without the venv
    sys.stderr.write(
        f"clickhouse_http: missing Python package ({missing}); install scripts/requirements-services.txt "
        "into the services venv (scripts/services.sh up does it)\n"
    )
    sys.exit(2)

LOG = logging.getLogger("clickhouse_http")

# URL parameters that are part of the HTTP protocol, not settings (ClickHouse's reserved parameter names,
# plus the credentials and session parameters this adapter accepts and ignores).
PROTOCOL_PARAMS = frozenset(
    {
        "query", "database", "default_format", "compress", "decompress", "user", "password", "quota_key",
        "query_id", "stacktrace", "role", "buffer_size", "wait_end_of_query", "session_id",
        "session_timeout", "session_check", "close_session", "client_protocol_version", "readonly",
        "enable_http_compression", "http_zlib_compression_level",
    }
)
SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
PARAM_NAME = re.compile(r"^param_([A-Za-z_][A-Za-z0-9_]*)$")

NATIVE_BLOCK_MAX = 1 << 20  # ClickHouse's max_compress_block_size
NATIVE_CHECKSUM = 16
NATIVE_HEADER = 9
NATIVE_METHOD_NONE = 0x02
NATIVE_METHOD_LZ4 = 0x82
SPOOL_IN_MEMORY = 8 << 20
QUERY_SCAN_LIMIT = 1 << 20  # how much of a body may hold SQL before the inline data of an INSERT
COPY_CHUNK = 1 << 20

# Error codes the adapter raises itself (same numbers as ClickHouse's ErrorCodes).
CHECKSUM_DOESNT_MATCH = 40
NOT_IMPLEMENTED = 48
SYNTAX_ERROR = 62
UNKNOWN_COMPRESSION_METHOD = 89
UNKNOWN_SETTING = 115
CANNOT_DECOMPRESS = 271
UNKNOWN_EXCEPTION = 1002

# HTTP status by exception name, as ClickHouse's exceptionCodeToHTTPStatus does; everything else is 500.
STATUS_BY_ERROR_NAME = {
    **{name: 401 for name in ("REQUIRED_PASSWORD",)},
    **{
        name: 403
        for name in ("UNKNOWN_USER", "WRONG_PASSWORD", "AUTHENTICATION_FAILED", "SET_NON_GRANTED_ROLE",
                     "ACCESS_DENIED")
    },
    **{
        name: 400
        for name in (
            "BAD_ARGUMENTS", "CANNOT_COMPILE_REGEXP", "CANNOT_PARSE_TEXT", "CANNOT_PARSE_ESCAPE_SEQUENCE",
            "CANNOT_PARSE_QUOTED_STRING", "CANNOT_PARSE_DATE", "CANNOT_PARSE_DATETIME", "CANNOT_PARSE_NUMBER",
            "CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING", "CANNOT_PARSE_IPV4", "CANNOT_PARSE_IPV6",
            "CANNOT_PARSE_INPUT_ASSERTION_FAILED", "CANNOT_PARSE_UUID", "DUPLICATE_COLUMN", "ILLEGAL_COLUMN",
            "UNKNOWN_ELEMENT_IN_AST", "UNKNOWN_TYPE_OF_AST_NODE", "THERE_IS_NO_COLUMN", "TOO_DEEP_AST",
            "TOO_BIG_AST", "UNEXPECTED_AST_STRUCTURE", "SYNTAX_ERROR", "INCORRECT_DATA", "TYPE_MISMATCH",
            "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE",
        )
    },
    **{
        name: 404
        for name in (
            "UNKNOWN_TABLE", "UNKNOWN_FUNCTION", "UNKNOWN_IDENTIFIER", "UNKNOWN_TYPE", "UNKNOWN_STORAGE",
            "UNKNOWN_DATABASE", "UNKNOWN_SETTING", "UNKNOWN_DIRECTION_OF_SORTING", "UNKNOWN_AGGREGATE_FUNCTION",
            "UNKNOWN_FORMAT", "UNKNOWN_DATABASE_ENGINE", "UNKNOWN_TYPE_OF_QUERY", "UNKNOWN_ROLE",
        )
    },
    "QUERY_IS_TOO_LARGE": 413,
    "NOT_IMPLEMENTED": 501,
    "SOCKET_TIMEOUT": 503,
    "CANNOT_OPEN_FILE": 503,
    "CANNOT_SCHEDULE_TASK": 503,
    "HTTP_LENGTH_REQUIRED": 411,
    "TIMEOUT_EXCEEDED": 408,
    "UNSUPPORTED_MEDIA_TYPE": 415,
}


class ClickHouseError(Exception):
    """An error reported the way ClickHouse reports it: a numeric code and a `Code: N. DB::Exception` text."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code
        self.message = message

    @classmethod
    def from_engine(cls, error: BaseException) -> "ClickHouseError":
        """Parse chdb's error text; chdb prefixes some messages (streaming inserts) with its own words."""
        text = str(error)
        found = re.search(r"Code: (\d+)\. ", text)
        if found is None:
            return cls(UNKNOWN_EXCEPTION, f"Code: {UNKNOWN_EXCEPTION}. DB::Exception: {text.strip()}")
        return cls(int(found.group(1)), text[found.start():].strip())

    @classmethod
    def adapter(cls, code: int, name: str, message: str) -> "ClickHouseError":
        return cls(code, f"Code: {code}. DB::Exception: {message}. ({name})")


# --- request bodies -------------------------------------------------------------------------------------


def iter_chunked(stream: BinaryIO) -> Iterator[bytes]:
    """Decode an HTTP/1.1 chunked body (the crate streams INSERT data this way)."""
    while True:
        line = stream.readline(65537)
        if not line.endswith(b"\n"):
            raise ClickHouseError.adapter(SYNTAX_ERROR, "CANNOT_READ_HTTP_CHUNK", "malformed chunk size line")
        size_text = line.split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise ClickHouseError.adapter(
                SYNTAX_ERROR, "CANNOT_READ_HTTP_CHUNK", f"invalid chunk size {size_text[:32]!r}"
            ) from None
        if size == 0:
            while stream.readline(65537) not in (b"\r\n", b"\n", b""):
                pass  # trailer fields: none matter here
            return
        remaining = size
        while remaining:
            piece = stream.read(min(remaining, COPY_CHUNK))
            if not piece:
                raise ClickHouseError.adapter(SYNTAX_ERROR, "CANNOT_READ_HTTP_CHUNK", "body ended inside a chunk")
            remaining -= len(piece)
            yield piece
        stream.readline(3)  # CRLF after the chunk data


def iter_fixed(stream: BinaryIO, length: int) -> Iterator[bytes]:
    remaining = length
    while remaining:
        piece = stream.read(min(remaining, COPY_CHUNK))
        if not piece:
            raise ClickHouseError.adapter(
                SYNTAX_ERROR, "CANNOT_READ_ALL_DATA", f"body ended after {length - remaining} of {length} bytes"
            )
        remaining -= len(piece)
        yield piece


def iter_http_decoded(chunks: Iterator[bytes], content_encoding: str) -> Iterator[bytes]:
    """Undo Content-Encoding (gzip, deflate, lz4 frame) on a request body."""
    encoding = content_encoding.strip().lower()
    if encoding in ("", "identity"):
        yield from chunks
        return
    if encoding in ("gzip", "deflate", "x-gzip"):
        decoder = zlib.decompressobj(wbits=47 if encoding != "deflate" else 15)
        for piece in chunks:
            yield decoder.decompress(piece)
        yield decoder.flush()
        return
    if encoding == "lz4":
        decoder = lz4.frame.LZ4FrameDecompressor()
        for piece in chunks:
            yield decoder.decompress(piece)
        return
    raise ClickHouseError.adapter(
        UNKNOWN_COMPRESSION_METHOD, "UNKNOWN_COMPRESSION_METHOD",
        f"unsupported Content-Encoding {content_encoding!r} (the adapter knows gzip, deflate, lz4)",
    )


def native_checksum(block: bytes) -> bytes:
    """CityHash128 v1.0.2 of header+payload as ClickHouse stores it: two little-endian u64.

    NB: clickhouse_cityhash returns the 128-bit value with ClickHouse's first u64 in the HIGH half.
    """
    digest = CityHash128(block)
    return struct.pack("<QQ", digest >> 64, digest & 0xFFFF_FFFF_FFFF_FFFF)


def iter_native_decompressed(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Decode ClickHouse's native compressed-block framing (`decompress=1` request bodies).

    Each block: 16-byte CityHash128 checksum, 1-byte method, u32 LE size of header+payload,
    u32 LE uncompressed size, payload. Checksums are verified, as ClickHouse does.
    """
    buffer = bytearray()
    for piece in chunks:
        buffer += piece
        offset = 0
        while len(buffer) - offset >= NATIVE_CHECKSUM + NATIVE_HEADER:
            method, compressed_size, plain_size = struct.unpack_from("<BII", buffer, offset + NATIVE_CHECKSUM)
            if compressed_size < NATIVE_HEADER:
                raise ClickHouseError.adapter(
                    CANNOT_DECOMPRESS, "CANNOT_DECOMPRESS", f"compressed block size {compressed_size} is too small"
                )
            end = offset + NATIVE_CHECKSUM + compressed_size
            if len(buffer) < end:
                break
            block = bytes(buffer[offset + NATIVE_CHECKSUM:end])
            if native_checksum(block) != bytes(buffer[offset:offset + NATIVE_CHECKSUM]):
                raise ClickHouseError.adapter(
                    CHECKSUM_DOESNT_MATCH, "CHECKSUM_DOESNT_MATCH", "checksum doesn't match: corrupted data"
                )
            payload = block[NATIVE_HEADER:]
            if method == NATIVE_METHOD_LZ4:
                try:
                    yield lz4.block.decompress(payload, uncompressed_size=plain_size)
                except lz4.block.LZ4BlockError as error:
                    raise ClickHouseError.adapter(
                        CANNOT_DECOMPRESS, "CANNOT_DECOMPRESS", f"cannot decompress LZ4 block: {error}"
                    ) from None
            elif method == NATIVE_METHOD_NONE:
                yield payload
            else:
                raise ClickHouseError.adapter(
                    UNKNOWN_COMPRESSION_METHOD, "UNKNOWN_COMPRESSION_METHOD",
                    f"unknown compression method 0x{method:02x} (the adapter knows LZ4 0x82 and none 0x02)",
                )
            offset = end
        del buffer[:offset]
    if buffer:
        raise ClickHouseError.adapter(
            CANNOT_DECOMPRESS, "CANNOT_DECOMPRESS", f"body ends with {len(buffer)} bytes of a truncated block"
        )


def native_compress(data: bytes) -> bytes:
    """Encode a response in native LZ4 blocks (`compress=1`), as the crate's decoder expects."""
    out = bytearray()
    for start in range(0, len(data), NATIVE_BLOCK_MAX):
        plain = data[start:start + NATIVE_BLOCK_MAX]
        payload = lz4.block.compress(plain, store_size=False)
        block = struct.pack("<BII", NATIVE_METHOD_LZ4, NATIVE_HEADER + len(payload), len(plain)) + payload
        out += native_checksum(block)
        out += block
    return bytes(out)


def parse_multipart(content_type: str, body: bytes) -> list[tuple[str, str]]:
    """Fields of a multipart/form-data body; file parts (external tables) are not supported."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\nMIME-Version: 1.0\r\n\r\n" + body
    )
    if not message.is_multipart():
        raise ClickHouseError.adapter(SYNTAX_ERROR, "BAD_ARGUMENTS", "malformed multipart/form-data body")
    fields = []
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            raise ClickHouseError.adapter(SYNTAX_ERROR, "BAD_ARGUMENTS", "multipart field without a name")
        if part.get_param("filename", header="content-disposition") is not None:
            raise ClickHouseError.adapter(
                NOT_IMPLEMENTED, "NOT_IMPLEMENTED", f"external tables (multipart file {name!r}) are not supported"
            )
        payload = part.get_payload(decode=True) or b""
        fields.append((str(name), payload.decode("utf-8")))
    return fields


# --- SQL scanning ---------------------------------------------------------------------------------------


@dataclass
class InsertWithData:
    """An `INSERT ... FORMAT X` statement whose data follows the format name."""

    head: str  # the statement up to (not including) FORMAT
    format: str
    data_offset: int  # offset of the first data byte in the scanned text


_WORD = re.compile(rb"[A-Za-z_][A-Za-z0-9_]*")
_SPACE = re.compile(rb"[ \t\r\n\f]+")
# A run of characters that are none of: a word's start, space, a paren, a quote, `;` or what may start
# a comment. One token, so that a long number list costs one regex match, not a Python step a byte.
_OTHER = re.compile(rb"[^A-Za-z_ \t\r\n\f()'\"`;#/\-]+")
# The body of a literal quoted with Q: anything but Q and backslash, a backslash and the byte it
# escapes (or a lone backslash at the end), or QQ.
_QUOTED_BODY = {
    quote: re.compile(rb"(?:[^%s\\]+|\\.|\\\Z|%s%s)*" % (quote, quote, quote), re.S)
    for quote in (b"'", b'"', b"`")
}


def split_settings_clause(head: str) -> tuple[str, str]:
    """Split `INSERT INTO t [(cols)] [SETTINGS ...] ` into the statement and its SETTINGS clause ('' if none)."""
    raw = head.encode("utf-8")
    depth = 0
    for start, end, kind in _tokens(raw):
        depth += {b"(": 1, b")": -1}.get(kind, 0)
        if depth == 0 and kind == b"w" and raw[start:end].upper() == b"SETTINGS":
            return raw[:start].decode("utf-8"), raw[start:].decode("utf-8")
    return head, ""


def _tokens(sql: bytes) -> Iterator[tuple[int, int, bytes]]:
    """Yield (start, end, kind) tokens of SQL text: b'w' words, b'(' / b')' parens, b'x' anything else
    (`;` alone, other punctuation and numbers in runs).

    Skips whitespace, comments and quoted literals/identifiers, which is all that is needed to find the
    FORMAT clause reliably. Every step is a regex match or a `find`: the sink's statements carry key
    lists of hundreds of kilobytes, which a loop over single bytes took ~20 ms per 40 kB to scan.
    """
    i, n = 0, len(sql)
    while i < n:
        c = sql[i:i + 1]
        if c in b" \t\r\n\f":
            i = _SPACE.match(sql, i).end()
        elif sql.startswith(b"--", i) or c == b"#":
            end = sql.find(b"\n", i)
            i = n if end < 0 else end + 1
        elif sql.startswith(b"/*", i):
            end = sql.find(b"*/", i + 2)
            i = n if end < 0 else end + 2
        elif c in _QUOTED_BODY:
            j = _QUOTED_BODY[c].match(sql, i + 1).end()
            end = j + 1 if j < n else n
            yield i, end, b"x"
            i = end
        elif word := _WORD.match(sql, i):
            yield i, word.end(), b"w"
            i = word.end()
        elif other := _OTHER.match(sql, i):
            yield i, other.end(), b"x"
            i = other.end()
        else:
            yield i, i + 1, c if c in b"()" else b"x"
            i += 1


def find_insert_data(sql: bytes) -> InsertWithData | None:
    """Locate the data of `INSERT ... FORMAT X <data>`; None for any other statement.

    Data starts after the format name, past spaces/tabs and at most one line break (ClickHouse's rule).
    """
    depth = 0
    tokens = _tokens(sql)
    first = next(tokens, None)
    if first is None or first[2] != b"w" or sql[first[0]:first[1]].upper() != b"INSERT":
        return None
    for start, end, kind in tokens:
        if kind == b"(":
            depth += 1
        elif kind == b")":
            depth -= 1
        elif kind == b"w" and depth == 0:
            word = sql[start:end].upper()
            if word in (b"VALUES", b"SELECT", b"WITH"):
                return None
            if word == b"FORMAT":
                name = next(tokens, None)
                if name is None or name[2] != b"w":
                    return None
                offset = name[1]
                while offset < len(sql) and sql[offset:offset + 1] in b" \t\f":
                    offset += 1
                if sql[offset:offset + 1] == b"\r":
                    offset += 1
                if sql[offset:offset + 1] == b"\n":
                    offset += 1
                return InsertWithData(
                    head=sql[:start].decode("utf-8"),
                    format=sql[name[0]:name[1]].decode("ascii"),
                    data_offset=offset,
                )
    return None


def output_format(sql: str, default: str) -> str:
    """The output format of a query: its own FORMAT clause (outermost, last) or the default."""
    raw = sql.encode("utf-8")
    depth, chosen, expect_name = 0, default, False
    for start, end, kind in _tokens(raw):
        if kind == b"(":
            depth += 1
        elif kind == b")":
            depth -= 1
        elif kind == b"w" and depth == 0:
            word = raw[start:end]
            if expect_name:
                chosen = word.decode("ascii")
                expect_name = False
            elif word.upper() == b"FORMAT":
                expect_name = True
        else:
            expect_name = False
    return chosen


def has_several_statements(sql: str) -> bool:
    """True when a `;` is followed by more SQL (ClickHouse's HTTP interface runs one statement)."""
    raw = sql.encode("utf-8")
    seen_semicolon = False
    for start, _end, _kind in _tokens(raw):
        if seen_semicolon:
            return True
        seen_semicolon = raw[start:start + 1] == b";"
    return False


def first_keyword(sql: str) -> str:
    token = next(_tokens(sql.encode("utf-8")), None)
    if token is None or token[2] != b"w":
        return ""
    return sql.encode("utf-8")[token[0]:token[1]].decode("ascii").upper()


def content_type_for(fmt: str) -> str:
    lower = fmt.lower()
    if lower.startswith(("tabseparated", "tsv")):
        return "text/tab-separated-values; charset=UTF-8"
    if lower.startswith("csv"):
        return "text/csv; charset=UTF-8; header=" + ("present" if "withnames" in lower else "absent")
    if lower.startswith("json") and "eachrow" not in lower and "lines" not in lower:
        return "application/json; charset=UTF-8"
    if lower.startswith("json") or lower == "ndjson":
        return "application/x-ndjson; charset=UTF-8"
    if lower.startswith(("rowbinary", "native", "parquet", "arrow", "orc", "avro", "protobuf", "capnproto",
                         "msgpack", "bson", "npy")):
        return "application/octet-stream"
    return "text/plain; charset=UTF-8"


# --- the engine -----------------------------------------------------------------------------------------


@dataclass
class QueryRequest:
    """Everything one HTTP request asks of the engine, already decoded."""

    database: str
    default_format: str
    settings: list[tuple[str, str]]
    params: dict[str, str]
    sql: str = ""  # a complete statement (when `insert` is None)
    insert: InsertWithData | None = None
    inline_data: bytes = b""  # insert data that came with the SQL text, before `data`
    data: BinaryIO | None = None  # spooled insert data


@dataclass
class QueryResult:
    body: bytes
    format: str
    summary: dict[str, int] = field(default_factory=dict)


class Connection:
    """One chdb connection (a `Session`) to the engine's data path, used by one request at a time.

    Database (`USE`) and settings are per connection in chdb >= 4.0; each request sets its own and
    they are put back to this connection's baseline afterwards.
    """

    def __init__(self, data_dir: str, spool_dir: str):
        self._spool_dir = spool_dir
        self.broken = False  # its settings could not be restored: close it, never reuse it
        self._session = chdb.session.Session(data_dir)
        # NB: chdb turns on implicit_select (bare expressions run as SELECT); a server does not.
        self._session.query("SET implicit_select = 0")
        self._baseline = self._changed_settings()

    def scalar(self, sql: str) -> str:
        return self._session.query(sql, "TabSeparatedRaw").bytes().decode("utf-8").strip()

    def rows(self, sql: str) -> list[dict]:
        raw = self._session.query(sql, "JSONEachRow")
        return [json.loads(line) for line in raw.bytes().decode("utf-8").splitlines() if line]

    def _changed_settings(self) -> dict[str, str]:
        rows = self.rows("SELECT name, value FROM system.settings WHERE changed")
        return {row["name"]: row["value"] for row in rows}

    def execute(self, request: QueryRequest) -> QueryResult:
        """Runs the request; raises RestoreFailed (after the result or error) if the connection's
        settings could not be put back, so that the caller closes it instead of reusing it."""
        applied: list[str] = []
        try:
            self._run(f"USE {quote_identifier(request.database)}")
            for name, value in request.settings:
                self._run(f"SET {name} = {quote_string(value)}")
                applied.append(name)
            if request.insert is not None:
                return self._insert(request)
            return self._query(request)
        finally:
            try:
                self._restore(applied, full=request.insert is None and first_keyword(request.sql) == "SET")
            except Exception:
                LOG.exception("could not restore a connection's settings after a request: closing it")
                self.broken = True

    def _run(self, sql: str):
        try:
            return self._session.query(sql, "TabSeparated")
        except Exception as error:  # chdb raises ChdbError / RuntimeError with ClickHouse's text
            raise ClickHouseError.from_engine(error) from None

    def _query(self, request: QueryRequest) -> QueryResult:
        fmt = output_format(request.sql, request.default_format)
        started = time.perf_counter_ns()
        try:
            result = self._session.query(request.sql, request.default_format, params=request.params or None)
        except Exception as error:
            raise ClickHouseError.from_engine(error) from None
        body = result.bytes() or b""
        return QueryResult(
            body=body,
            format=fmt,
            summary={
                "read_rows": result.rows_read(),
                "read_bytes": result.bytes_read(),
                "written_rows": result.rows_written(),
                "written_bytes": result.bytes_written(),
                "result_bytes": len(body),
                "elapsed_ns": time.perf_counter_ns() - started,
            },
        )

    def _insert(self, request: QueryRequest) -> QueryResult:
        """Run `INSERT ... FORMAT X <data>` as `INSERT ... FROM INFILE <spooled data> FORMAT X`.

        NB: not chdb's streaming insert (`send_insert`): it answers success, rows_written included, for
        rows that a CHECK constraint or a materialised view refuses, and drops them. FROM INFILE fails with
        the engine's exception, as a server does.
        """
        assert request.insert is not None
        started = time.perf_counter_ns()
        statement, settings = split_settings_clause(request.insert.head)
        with tempfile.NamedTemporaryFile(dir=self._spool_dir, suffix=".data") as data:
            data.write(request.inline_data)
            if request.data is not None:
                request.data.seek(0)
                while piece := request.data.read(COPY_CHUNK):
                    data.write(piece)
            data.flush()
            sql = (f"{statement} FROM INFILE {quote_string(data.name)} COMPRESSION 'none' {settings}"
                   f"FORMAT {request.insert.format}")
            try:
                result = self._session.query(sql, "TabSeparated")
            except Exception as error:
                raise ClickHouseError.from_engine(error) from None
        return QueryResult(
            body=b"",
            format=request.insert.format,
            summary={
                "written_rows": result.rows_written(),
                "written_bytes": result.bytes_written(),
                "elapsed_ns": time.perf_counter_ns() - started,
            },
        )

    def _restore(self, names: list[str], full: bool) -> None:
        """Put settings back to the baseline so one request's settings never leak into the next."""
        if full:
            names = [name for name, value in self._changed_settings().items() if self._baseline.get(name) != value]
            names += [name for name in self._baseline if name not in names]
        for name in names:
            if name in self._baseline:
                self._session.query(f"SET {name} = {quote_string(self._baseline[name])}")
            else:
                self._session.query(f"SET {name} = DEFAULT")

    def close(self) -> None:
        self._session.close()


class Engine:
    """Up to `connections` chdb connections to one data path, each serving one request at a time.

    chdb >= 4.0 hosts one engine per process and runs queries of different connections to the same
    path in parallel (one connection per thread). Connections are opened on demand and reused; a
    request waits only when all of them are busy. The first one stays open for the adapter's life (the
    engine shuts down when its last connection closes).
    """

    def __init__(self, data_dir: str, spool_dir: str, connections: int = 8):
        if connections < 1:
            raise ValueError("connections must be at least 1")
        os.makedirs(data_dir, exist_ok=True)
        self._data_dir = data_dir
        self._spool_dir = spool_dir
        self._slots = threading.BoundedSemaphore(connections)
        self.connections = connections
        self._idle_lock = threading.Lock()
        self._idle: list[Connection] = []
        self._opened = 0
        first = Connection(data_dir, spool_dir)
        self._opened = 1
        self.version = first.scalar("SELECT version()")
        self.timezone = first.scalar("SELECT timezone()")
        self._status_by_code = self._http_status_by_code(first)
        self._idle.append(first)

    @staticmethod
    def _http_status_by_code(connection: Connection) -> dict[int, int]:
        statuses = {}
        for row in connection.rows(
            "SELECT DISTINCT code, name FROM system.errors SETTINGS system_events_show_zero_values = 1"
        ):
            if row["name"] in STATUS_BY_ERROR_NAME:
                statuses[int(row["code"])] = STATUS_BY_ERROR_NAME[row["name"]]
        return statuses

    def http_status(self, code: int) -> int:
        return self._status_by_code.get(code, 500)

    def execute(self, request: QueryRequest) -> QueryResult:
        with self._slots:
            with self._idle_lock:
                connection = self._idle.pop() if self._idle else None
            if connection is None:
                try:
                    connection = Connection(self._data_dir, self._spool_dir)
                except Exception as error:
                    raise ClickHouseError.from_engine(error) from None
                with self._idle_lock:
                    self._opened += 1
            try:
                return connection.execute(request)
            finally:
                if connection.broken:
                    self._discard(connection)
                else:
                    with self._idle_lock:
                        self._idle.append(connection)

    def _discard(self, connection: Connection) -> None:
        with self._idle_lock:
            self._opened -= 1
            last = self._opened == 0
        if last:  # keep the engine up: closing the last connection would shut it down
            with self._idle_lock:
                self._idle.append(Connection(self._data_dir, self._spool_dir))
                self._opened += 1
        try:
            connection.close()
        except Exception:
            LOG.exception("could not close a broken connection")

    def close(self) -> None:
        """Waits for the requests in flight, then closes every connection."""
        for _ in range(self.connections):
            self._slots.acquire()
        with self._idle_lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()


def quote_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def quote_identifier(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


# --- HTTP -----------------------------------------------------------------------------------------------


class Handler(BaseHTTPRequestHandler):
    """One HTTP request: decode it, run it on the engine, answer like ClickHouse."""

    protocol_version = "HTTP/1.1"
    server_version = "cdcstar-clickhouse-adapter"
    # NB: a reply is two writes (headers, then body). With Nagle's algorithm on, the body waits for the
    # client to acknowledge the headers, and a keep-alive client delays that acknowledgement by up to
    # 40 ms: every query on a reused connection took >= 40 ms whatever its own cost.
    disable_nagle_algorithm = True
    engine: Engine  # set on the subclass built in serve()
    spool_dir: str

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - stdlib signature
        LOG.debug("%s " + format, self.address_string(), *args)

    # ClickHouse answers health checks on GET and HEAD.
    def do_HEAD(self) -> None:
        self._dispatch(head=True)

    def do_GET(self) -> None:
        self._dispatch(head=False)

    def do_POST(self) -> None:
        self._dispatch(head=False)

    def do_OPTIONS(self) -> None:
        self._drain_body()
        self.send_response(204)
        self.send_header("Allow", "GET, POST, HEAD, OPTIONS")
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
        self.send_header("Access-Control-Allow-Headers", "origin, x-requested-with, x-clickhouse-format, "
                         "x-clickhouse-user, x-clickhouse-key, authorization, content-type")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _dispatch(self, head: bool) -> None:
        started = time.perf_counter()
        url = urlsplit(self.path)
        params = parse_qsl(url.query, keep_blank_values=True)
        sql_for_log = ""
        try:
            if url.path in ("/ping", "/replicas_status") or (url.path == "/" and self._is_bare_get(params)):
                self._drain_body()
                self._reply(200, b"Ok.\n", {"Content-Type": "text/html; charset=UTF-8"}, head=head)
                self._log(200, started, "", {})
                return
            if url.path not in ("/", "/query"):
                self._drain_body()
                body = f"There is no handle {url.path}\n\nUse / or /ping for health checks.\n".encode()
                self._reply(404, body, {"Content-Type": "text/plain; charset=UTF-8"}, head=head)
                self._log(404, started, "", {})
                return
            with tempfile.SpooledTemporaryFile(SPOOL_IN_MEMORY, dir=self.spool_dir) as spool:
                request, sql_for_log, options = self._decode(params, spool)
                result = self.engine.execute(request)
            self._answer(result, options, params, head)
            self._log(200, started, sql_for_log, result.summary)
        except ClickHouseError as error:
            status = self.engine.http_status(error.code)
            self._fail(status, error, head)
            self._log(status, started, sql_for_log, {}, error=error)
        except (ConnectionError, socket.timeout) as error:
            self.close_connection = True
            LOG.warning("%s %s: connection lost: %s", self.command, url.path, error)
        except Exception as error:  # a bug in the adapter: still answer in ClickHouse's shape
            LOG.exception("adapter failure on %s %s", self.command, url.path)
            wrapped = ClickHouseError(UNKNOWN_EXCEPTION, f"Code: {UNKNOWN_EXCEPTION}. DB::Exception: adapter "
                                      f"failure: {type(error).__name__}: {error}. (UNKNOWN_EXCEPTION)")
            self._fail(500, wrapped, head)

    def _is_bare_get(self, params: list[tuple[str, str]]) -> bool:
        """`GET /` with neither a query parameter nor a body is ClickHouse's liveness answer."""
        has_body = "chunked" in self.headers.get("Transfer-Encoding", "").lower() or int(
            self.headers.get("Content-Length") or 0
        ) > 0
        return self.command in ("GET", "HEAD") and not has_body and all(name != "query" for name, _ in params)

    def _body_chunks(self) -> Iterator[bytes]:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return iter_chunked(self.rfile)
        length = int(self.headers.get("Content-Length") or 0)
        return iter_fixed(self.rfile, length)

    def _drain_body(self) -> None:
        try:
            for _ in self._body_chunks():
                pass
        except ClickHouseError:
            self.close_connection = True

    def _decode(self, url_params: list[tuple[str, str]], spool: BinaryIO) -> tuple[QueryRequest, str, dict]:
        """Read the body into `spool` and turn URL, headers and body into a QueryRequest."""
        # Any failure from here on may leave unread body bytes on the connection: never reuse it then.
        keep_alive = not self.close_connection
        self.close_connection = True
        chunks = iter_http_decoded(self._body_chunks(), self.headers.get("Content-Encoding", ""))
        params = list(url_params)
        if dict(params).get("decompress", "0") not in ("0", ""):
            chunks = iter_native_decompressed(chunks)
        for piece in chunks:
            spool.write(piece)
        self.close_connection = not keep_alive
        body_size = spool.tell()
        spool.seek(0)

        if self.headers.get("Content-Type", "").lower().startswith("multipart/form-data"):
            params += parse_multipart(self.headers["Content-Type"], spool.read())
            spool.seek(0)
            spool.truncate()
            body_size = 0

        options: dict[str, str] = {}
        settings: dict[str, str] = {}
        query_params: dict[str, str] = {}
        for name, value in params:
            param = PARAM_NAME.match(name)
            if param:
                query_params[param.group(1)] = value
            elif name in PROTOCOL_PARAMS:
                options[name] = value
            elif SETTING_NAME.match(name):
                settings[name] = value
            else:
                raise ClickHouseError.adapter(UNKNOWN_SETTING, "UNKNOWN_SETTING", f"Unknown setting '{name}'")

        database = self.headers.get("X-ClickHouse-Database") or options.get("database") or "default"
        default_format = self.headers.get("X-ClickHouse-Format") or options.get("default_format") or "TabSeparated"
        request = QueryRequest(database, default_format, list(settings.items()), query_params)

        url_sql = options.get("query", "").encode("utf-8")
        prefix = url_sql + b"\n" if "query" in options else b""
        scanned = prefix + spool.read(QUERY_SCAN_LIMIT)
        insert = find_insert_data(scanned)
        if insert is not None:
            request.insert = insert
            if insert.data_offset < len(prefix):
                request.inline_data = prefix[insert.data_offset:]
                spool.seek(0)
            else:
                spool.seek(insert.data_offset - len(prefix))
            request.data = _Window(spool, spool.tell(), body_size)
            return request, insert.head + "FORMAT " + insert.format, options

        spool.seek(0)
        text = (url_sql + (b"\n" if url_sql and body_size else b"") + spool.read()).strip()
        if not text:
            raise ClickHouseError.adapter(SYNTAX_ERROR, "SYNTAX_ERROR", "Empty query")
        try:
            request.sql = text.decode("utf-8")
        except UnicodeDecodeError as error:
            raise ClickHouseError.adapter(
                SYNTAX_ERROR, "SYNTAX_ERROR", f"query is not valid UTF-8 at byte {error.start}"
            ) from None
        if has_several_statements(request.sql):
            raise ClickHouseError.adapter(SYNTAX_ERROR, "SYNTAX_ERROR", "Multi-statements are not allowed")
        return request, request.sql, options

    def _answer(self, result: QueryResult, options: dict[str, str], params, head: bool) -> None:
        body = result.body
        headers = {
            "Content-Type": content_type_for(result.format),
            "X-ClickHouse-Format": result.format,
            "X-ClickHouse-Summary": json.dumps({k: str(v) for k, v in result.summary.items()}),
        }
        if options.get("compress", "0") not in ("0", "") and body:
            body = native_compress(body)
        elif options.get("enable_http_compression", "0") not in ("0", "") and body:
            body, encoding = http_compress(body, self.headers.get("Accept-Encoding", ""))
            if encoding:
                headers["Content-Encoding"] = encoding
        self._reply(200, body, headers, head=head, query_id=options.get("query_id"))

    def _fail(self, status: int, error: ClickHouseError, head: bool) -> None:
        text = error.message
        if "(version " not in text:
            text += f" (version {self.engine.version})"
        headers = {
            "Content-Type": "text/plain; charset=UTF-8",
            "X-ClickHouse-Exception-Code": str(error.code),
        }
        self._reply(status, (text + "\n").encode("utf-8"), headers, head=head)

    def _reply(self, status: int, body: bytes, headers: dict[str, str], head: bool, query_id=None) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("X-ClickHouse-Query-Id", query_id or str(uuid.uuid4()))
        self.send_header("X-ClickHouse-Timezone", self.engine.timezone)
        self.send_header("X-ClickHouse-Server-Display-Name", socket.gethostname())
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _log(self, status: int, started: float, sql: str, summary: dict, error: ClickHouseError | None = None):
        elapsed_ms = (time.perf_counter() - started) * 1000
        short = " ".join(sql.split())
        if len(short) > 200:
            short = short[:197] + "..."
        rows = summary.get("written_rows") or summary.get("read_rows") or 0
        line = f"{self.command} {urlsplit(self.path).path} {status} {elapsed_ms:.1f}ms rows={rows}"
        if error is not None:
            line += f" code={error.code}"
        LOG.info("%s %s", line, json.dumps(short) if short else "")


class _Window(io.RawIOBase):
    """A read-only view of spool[start:end] (the insert data behind the SQL in a body)."""

    def __init__(self, inner: BinaryIO, start: int, end: int):
        self._inner, self._start, self._end, self._pos = inner, start, end, start

    def readable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        self._pos = self._start + offset
        return offset

    def read(self, size: int = -1) -> bytes:
        remaining = self._end - self._pos
        if size < 0 or size > remaining:
            size = remaining
        if size <= 0:
            return b""
        self._inner.seek(self._pos)
        data = self._inner.read(size)
        self._pos += len(data)
        return data


def http_compress(body: bytes, accept_encoding: str) -> tuple[bytes, str]:
    accepted = [part.split(";")[0].strip().lower() for part in accept_encoding.split(",")]
    if "lz4" in accepted:
        return lz4.frame.compress(body), "lz4"
    if "gzip" in accepted:
        compressor = zlib.compressobj(wbits=31)
        return compressor.compress(body) + compressor.flush(), "gzip"
    if "deflate" in accepted:
        return zlib.compress(body), "deflate"
    return body, ""


# --- process --------------------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default=os.environ.get("CLICKHOUSE_ADAPTER_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("CLICKHOUSE_ADAPTER_PORT", "18123")))
    parser.add_argument("--data-dir", default=os.environ.get("CLICKHOUSE_ADAPTER_DATA_DIR", ".services/clickhouse"),
                        help="where the engine keeps its databases (persists across restarts)")
    parser.add_argument("--connections", type=int,
                        default=int(os.environ.get("CLICKHOUSE_ADAPTER_CONNECTIONS", "8")),
                        help="chdb connections serving requests in parallel (more requests wait)")
    parser.add_argument("--log-level", default=os.environ.get("CLICKHOUSE_ADAPTER_LOG_LEVEL", "info"),
                        choices=["debug", "info", "warning", "error"])
    return parser.parse_args(argv)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the crate opens several pooled connections at once


def serve(args: argparse.Namespace) -> int:
    data_dir = os.path.abspath(args.data_dir)
    spool_dir = os.path.join(data_dir, "adapter-spool")
    os.makedirs(spool_dir, exist_ok=True)
    try:
        engine = Engine(os.path.join(data_dir, "engine"), spool_dir, args.connections)
    except Exception as error:
        LOG.error("cannot open the ClickHouse engine in %s: %s", data_dir, error)
        return 1
    handler = type("BoundHandler", (Handler,), {"engine": engine, "spool_dir": spool_dir})
    try:
        server = Server((args.host, args.port), handler)
    except OSError as error:
        LOG.error("cannot listen on %s:%d: %s (is the port taken? see `ss -ltnp`)", args.host, args.port, error)
        engine.close()
        return 2

    def stop(signum, _frame):
        LOG.info("received %s, shutting down", signal.Signals(signum).name)
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    LOG.info("ClickHouse %s (chdb) serving http://%s:%d data_dir=%s connections=%d", engine.version, args.host,
             args.port, data_dir, engine.connections)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        engine.close()
        LOG.info("stopped")
    return 0


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return serve(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
