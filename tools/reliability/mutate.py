"""Seeded byte mutations of valid inputs, for tools/reliability/corpus.py.

Each mutant applies one to four edits: bit flips, bytes set to boundary values, numbers in text replaced by
extreme ones, ranges deleted, duplicated or truncated. `header` is the length of the part of a binary file
worth aiming at (an IDX or safetensors header); most edits land there, since damage to pixel or tensor
bytes is rarely interesting.
"""
import random
import re

INTERESTING_BYTES = [0x00, 0xFF, 0x7F, 0x80, 0x01, 0xFE]
INTERESTING_TEXT = [b"0", b"-1", b"4294967295", b"18446744073709551616", b"99999999999999999999999", b"1e308",
                    b"-0", b"nan", b'"', b",", b"\n", b"{", b"[", b"}", b"]", b"\x00", b"\xff\xfe"]
NUMBER = re.compile(rb"-?\d+(\.\d+)?")


def _position(rng, data, header):
    if header and rng.random() < 0.8:
        return rng.randrange(min(header, len(data)))
    return rng.randrange(len(data))


def _edit(rng, data, header, text):
    if not data:
        return bytearray(rng.choice(INTERESTING_TEXT))
    op = rng.randrange(7 if text else 6)
    pos = _position(rng, data, header)
    if op == 0:  # flip one bit
        data[pos] ^= 1 << rng.randrange(8)
    elif op == 1:  # a boundary byte
        data[pos] = rng.choice(INTERESTING_BYTES)
    elif op == 2:  # delete a range
        del data[pos:pos + rng.randint(1, 16)]
    elif op == 3:  # duplicate a range
        chunk = data[pos:pos + rng.randint(1, 64)]
        data[pos:pos] = chunk
    elif op == 4:  # truncate
        del data[pos:]
    elif op == 5:  # insert a text token (also useful in binary headers: they are JSON or counts)
        data[pos:pos] = rng.choice(INTERESTING_TEXT)
    else:  # replace a number of a text file by an extreme one
        numbers = list(NUMBER.finditer(bytes(data)))
        if numbers:
            m = rng.choice(numbers)
            data[m.start():m.end()] = rng.choice(INTERESTING_TEXT[:8])
    return data


def mutate(original: bytes, seed: int, header: int = 0, text: bool = False) -> bytes:
    """A mutant of `original` that differs from it, reproducible from `seed`."""
    rng = random.Random(seed)
    for _ in range(8):
        data = bytearray(original)
        for _ in range(rng.randint(1, 4)):
            data = _edit(rng, data, header, text)
        if bytes(data) != original:
            return bytes(data)
    return original + b"\x00"
