"""A long-lived child for the cross-process hashing test.

Reads length-prefixed pickled lists of values on stdin and answers with one JSON list of
`hash_bytes(encode_value(v))` per batch, so one interpreter (with its own PYTHONHASHSEED,
hence its own set and dict-key orders) serves a whole hypothesis run.
"""

from __future__ import annotations

import pickle
import struct
import sys

import orjson

from merkl.hashing import encode_value, hash_bytes


def main() -> None:
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while True:
        header = stdin.read(8)
        if len(header) < 8:
            return
        (size,) = struct.unpack(">Q", header)
        values = pickle.loads(stdin.read(size))
        digests = [hash_bytes(encode_value(v)) for v in values]
        stdout.write(orjson.dumps(digests) + b"\n")
        stdout.flush()


if __name__ == "__main__":
    main()
