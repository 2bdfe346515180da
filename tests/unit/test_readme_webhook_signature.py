"""The README's webhook-signature recipe is the code marketplace developers copy: it must accept what
Hirfa signs and refuse what it must refuse. ``tests/http_support.verify_hirfa_signature`` is that very
block, loaded from README.md, so the suites that verify real deliveries with it test the recipe too."""

from __future__ import annotations

import ast
import time

import pytest

from shared.signatures import SignatureError, sign, verify
from tests.http_support import README, readme_python_block, verify_hirfa_signature

SECRET = "whsec_" + "5f1c" * 16
BODY = b'{"id":"evt_1","type":"payment.succeeded","data":{"object":{"id":"pay_1","amount":{"amount":12000}}}}'


def test_the_helper_is_the_readme_block_itself_not_a_copy():
    assert verify_hirfa_signature.__code__.co_filename == f"{README}:verify_hirfa_signature"


def test_the_recipe_needs_only_the_standard_library():
    tree = ast.parse(readme_python_block("verify_hirfa_signature"))
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert imported <= {"hashlib", "hmac", "time"}


def test_it_accepts_what_hirfa_signs():
    assert verify_hirfa_signature(SECRET, sign(SECRET, BODY), BODY)
    # While a secret is being rotated a delivery carries one v1 per secret: any may match.
    rotated = f"{sign(SECRET, BODY)},v1={'0' * 64}"
    assert verify_hirfa_signature(SECRET, rotated, BODY)


def _refused_cases() -> dict[str, tuple[str, str, bytes]]:
    """``(secret, header, body)`` by case, stamped now (at collection the window would drift)."""
    now = int(time.time())
    genuine = sign(SECRET, BODY, now)
    return {
        "tampered body": (SECRET, genuine, BODY.replace(b"12000", b"12001")),
        "a byte added": (SECRET, genuine, BODY + b" "),
        "another secret": ("whsec_" + "0" * 64, genuine, BODY),
        "stale timestamp": (SECRET, sign(SECRET, BODY, now - 360), BODY),
        "timestamp in the future": (SECRET, sign(SECRET, BODY, now + 360), BODY),
        "timestamp swapped": (SECRET, genuine.replace(f"t={now}", f"t={now - 1}"), BODY),
        "no timestamp": (SECRET, genuine.split(",", 1)[1], BODY),
        "no signature": (SECRET, f"t={now}", BODY),
        "not a header": (SECRET, "garbage", BODY),
    }


@pytest.mark.parametrize("case", list(_refused_cases()))
def test_it_refuses_what_hirfas_own_verifier_refuses(case):
    secret, header, body = _refused_cases()[case]
    assert not verify_hirfa_signature(secret, header, body)
    with pytest.raises(SignatureError):
        verify(secret, header, body, tolerance_seconds=300)


def test_a_timestamp_inside_the_window_is_accepted_either_side():
    now = int(time.time())
    for stamp in (now - 240, now + 240):
        assert verify_hirfa_signature(SECRET, sign(SECRET, BODY, stamp), BODY)
