"""The SWIFT "X" character set, and how Hirfa's text and references are written in it.

An MT940 may only carry ``a-z A-Z 0-9 / - ? : ( ) . , ' +`` and space (plus CR LF between lines).
Names are therefore transliterated (Arabic, Tifinagh, accented Latin, through ``anyascii``) rather
than dropped, and the few ASCII characters outside the set get a look-alike.

Hirfa's ids carry an underscore (``po_01JD…``), which the set lacks: they are written with a hyphen
(``po-01JD…``) and ``restore_reference`` turns an id-shaped reference back, so a payout id
round-trips through a bank's MT940 unchanged.
"""

from __future__ import annotations

import re

from anyascii import anyascii

SWIFT_X_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/-?:().,'+ ")
SWIFT_X_LINE = re.compile(r"[A-Za-z0-9/\-?:().,'+ ]*")

# ASCII characters outside the X set, and what stands in for them.
_LOOK_ALIKES = {
    "_": "-",
    "&": "+",
    "@": "(AT)",
    '"': "'",
    "`": "'",
    ";": ",",
    "!": ".",
    "[": "(",
    "]": ")",
    "{": "(",
    "}": ")",
    "<": "(",
    ">": ")",
    "\t": " ",
    "\r": " ",
    "\n": " ",
}

# A Hirfa id (shared/ids.py) with its underscore written as a hyphen, alone or inside a reference
# (a reserve top-up's ``RSV-<marketplace id>``).
_SWIFT_HIRFA_ID = re.compile(r"(?<![A-Za-z0-9])([a-z]{2,8})-([0-9A-HJKMNP-TV-Z]{26})(?![A-Za-z0-9])")


def to_swift_x(text: str) -> str:
    """``text`` in the SWIFT X character set: transliterated, never dropped (``"محمد"`` → ``"mhmd"``)."""
    out = []
    for char in anyascii(text):
        if char in SWIFT_X_CHARACTERS:
            out.append(char)
        else:
            out.append(_LOOK_ALIKES.get(char, "."))
    return "".join(out)


def swift_reference(reference: str) -> str:
    """A reference as written in a SWIFT field: Hirfa's ``po_…`` becomes ``po-…``."""
    return to_swift_x(reference)


def restore_reference(reference: str) -> str:
    """The reverse of ``swift_reference`` for Hirfa's ids: ``po-01JD…`` → ``po_01JD…`` (also inside
    ``RSV-mkt-01JD…``); any other reference as it is."""
    return _SWIFT_HIRFA_ID.sub(r"\1_\2", reference)
