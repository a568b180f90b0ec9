"""The log mask: every configured secret, and every piece of one a truncating logger leaves, is
masked in every record — whoever logs it, exception text included."""

from __future__ import annotations

import logging

import pytest

from mergebot.logmask import SecretMask, masking, secret_values

TOKEN = "tok_SuperSecretValue_1234567890abcdef"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"Bearer {TOKEN}\x00", "Bearer ***\x00"),
        ("b'Authorization: Bearer tok_SuperSecr", "b'Authorization: Bearer ***"),  # cut at 100
        ("...lue_12345678", "...***"),  # a piece cut at both ends
        (f"{TOKEN}AAAA", "***AAAA"),
        ("tok_Sup is too short a piece to tell", "tok_Sup is too short a piece to tell"),
    ],
)
def test_whole_secrets_and_pieces_are_masked(text: str, expected: str) -> None:
    assert SecretMask([TOKEN]).mask(text) == expected


def test_a_multi_line_key_is_masked_line_by_line() -> None:
    pem = "-----BEGIN KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo\n-----END KEY-----"
    mask = SecretMask(secret_values([pem, None, ""]))
    assert "MIIEow" not in mask.mask("key line MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo leaked")


def test_records_of_any_logger_are_masked_with_their_exception_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    with masking([TOKEN]):
        logging.getLogger("aiohttp.server").info("header %r", f"Bearer {TOKEN}")
        try:
            int(f"bad header: {TOKEN[:20]}")
        except ValueError:
            logging.getLogger("some.library").warning("failed", exc_info=True)
    logging.getLogger("after").info("after the block %s", TOKEN)
    text = caplog.text
    assert "Bearer ***" in text
    assert "'bad header: ***'" in text
    assert TOKEN[:10] not in text.split("after the block")[0]
    assert f"after the block {TOKEN}" in text  # the mask lives as long as the runtime
