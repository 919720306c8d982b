#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into fuzz/corpus/<target>/:
small, real requests (protobuf-encoded by hand, as tonic would receive
them), JSON records, page tokens and authorization headers. The seeds are
committed; run this again after changing a request message or a target's
input layout (`python3 fuzz/seeds.py`), then commit what changed."""

import base64
import hashlib
import json
import pathlib
import shutil
import struct

ROOT = pathlib.Path(__file__).resolve().parent / "corpus"


# --- protobuf wire format -------------------------------------------------

def varint(n):
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def key(field, wire):
    return varint(field << 3 | wire)


def string(field, value):
    data = value.encode("utf-8", "surrogatepass") if isinstance(value, str) else value
    return key(field, 2) + varint(len(data)) + data


def message(field, body):
    return key(field, 2) + varint(len(body)) + body


def integer(field, n):
    return key(field, 0) + varint(n)


def double(field, x):
    return key(field, 1) + struct.pack("<d", x)


def value(v):
    """A google.protobuf.Value."""
    if v is None:
        return integer(1, 0)
    if isinstance(v, bool):
        return integer(4, int(v))
    if isinstance(v, (int, float)):
        return double(2, float(v))
    if isinstance(v, str):
        return string(3, v)
    if isinstance(v, dict):
        return message(5, struct_(v))
    if isinstance(v, list):
        return message(6, b"".join(message(1, value(x)) for x in v))
    raise TypeError(v)


def struct_(record):
    """A google.protobuf.Struct."""
    return b"".join(
        message(1, string(1, k) + message(2, value(v))) for k, v in record.items()
    )


def timestamp(field, seconds, nanos=0):
    return message(field, integer(1, seconds) + integer(2, nanos))


# --- inputs ----------------------------------------------------------------

def token(obj):
    raw = json.dumps(obj, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


CONTEXTS_TOKEN = token({"after": "work", "k": "contexts"})
MEMORIES_TOKEN = token({"id": 42, "k": "memories", "micros": 1700000000123456, "query": "AAAAAAAAAAAAAAAA"})
USERS_TOKEN = token({"after": 7, "k": "users"})

RECORDS = [
    {},
    {"text": "deploy with `make release`, then tag ✓"},
    {"count": 3, "ratio": 0.1, "neg": -17, "minus_zero": -0.0, "big": 9007199254740992},
    {"flags": [True, False, None], "nested": {"list": [1, 2.5, "three", {"deep": []}]}},
    {"sql": "'; DROP TABLE memories; --", "like": "100% _x_ \\", "rtl": "\u202eabc", "crab": "🦀𝔘"},
    {"": "empty key", "e\u0301": "combining"},
]

# The first byte of a requests input picks the RPC, as in requests.rs.
MEMORY_REQUESTS = {
    0: [string(1, "work") + string(2, "my project") + integer(3, 1), string(1, "-bad"), string(1, "a" * 101),
        string(1, "ok") + integer(3, 5), string(1, "ok") + string(2, "a\0b")],
    1: [b"", integer(1, 10) + string(2, CONTEXTS_TOKEN), integer(1, (1 << 64) - 1), string(2, "garbage!")],
    2: [string(1, "work"), string(1, "é")],
    3: [string(1, "work"), b""],
    4: [string(1, "x.y_z")],
    5: [string(1, "0")],
    6: [string(1, "work") + string(2, "note") + message(3, struct_(r)) for r in RECORDS]
       + [string(2, " note"), string(2, "note"), string(2, "note") + message(3, message(1, string(1, "n") + message(2, double(2, float("nan")))))],
    7: [b"", string(1, "work") + string(3, "deploy -failed \"a b\" or c") + string(4, "note")
        + timestamp(5, 1700000000) + timestamp(6, 1800000000) + integer(7, 20) + string(8, MEMORIES_TOKEN),
        integer(2, 1) + string(1, "work"), timestamp(5, 0, -1), timestamp(6, (1 << 63) - 1), string(8, CONTEXTS_TOKEN)],
    8: [integer(1, 42), integer(1, 0), integer(1, (1 << 64) - 1)],
}
AUTH_REQUESTS = {
    9: [string(1, "Ada@Example.com") + string(2, "correct horse") + string(3, "Ada"),
        string(1, "a@b") + string(2, "é" * 36) + string(3, " x "), string(1, "nope") + string(2, "short")],
    10: [string(1, "ada@example.com") + string(2, "secret")],
    11: [string(1, "  rt_abc  "), b""],
    12: [string(1, "rt"), b""],
    13: [b""],
    14: [b""],
    15: [integer(1, 10) + string(2, USERS_TOKEN), integer(1, (1 << 64) - 1)],
    16: [string(1, "bob@example.com")],
    17: [string(1, "a@b@c")],
}

JSON_TEXTS = [json.dumps(r, ensure_ascii=False) for r in RECORDS] + [
    "{\"n\": 1.0, \"e\": 1e2, \"z\": -0, \"f\": 5e-324, \"m\": 1.7976931348623157e308}",
    "{\"a\": 9007199254740993}",
    "{\"s\": \"\\u0000\"}",
    "{\"d\": 1, \"d\": 2}",
    "[1, 2]",
    "{\"deep\": " + "[" * 60 + "]" * 60 + "}",
    "{\"s\": \"\\ud83e\\udd80 \\ud800\"}",
    "not json",
]
STRUCTS = [struct_(r) for r in RECORDS] + [
    message(1, string(1, "nan") + message(2, double(2, float("nan")))),
    message(1, string(1, "inf") + message(2, double(2, float("inf")))),
    message(1, string(1, "none") + message(2, b"")),
    message(1, string(1, "null7") + message(2, integer(1, 7))),
    message(1, string(1, "k\0") + message(2, string(3, "v"))),
]

PAGE_TOKENS = [CONTEXTS_TOKEN, MEMORIES_TOKEN, USERS_TOKEN, "", "not a token!", "A" * 1025,
               token({"after": "a\u0000", "k": "contexts"}), token({"k": "memories", "micros": -(1 << 63), "id": 1, "query": "q"}),
               token({"k": "contexts", "after": "work", "x": 1}), token([1, 2]), token({"k": "users", "after": 1e99})]

BEARERS = ["Bearer abc", "bearer  a.b-c_d~e+f/g== ", "BEARER\teyJhbGciOiJFZERTQSJ9.eyJzdWIiOiIxIn0.c2ln",
           "Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "Bearer ==", "Bearer a=b", "Bearer a b", "Bearerabc",
           "Bearer é", "  Bearer x  ", "Bearer " + "a" * 300]


def write(target, inputs):
    directory = ROOT / target
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    for data in inputs:
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogatepass")
        (directory / hashlib.sha1(data).hexdigest()).write_bytes(data)
    print(f"{target}: {len(inputs)} seeds")


def main():
    requests = []
    for rpc, bodies in {**MEMORY_REQUESTS, **AUTH_REQUESTS}.items():
        requests += [bytes([rpc]) + body for body in bodies]
    write("requests", requests)
    write("json", [b"\0" + t.encode() for t in JSON_TEXTS] + [b"\1" + s for s in STRUCTS])
    write("page_tokens", PAGE_TOKENS)
    write("bearer", BEARERS + [b"Bearer \xff", b"Bearer a\0"])


if __name__ == "__main__":
    main()
