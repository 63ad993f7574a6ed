"""Identifiers: the RequestId is an upper-case version 4 UUID, different every time."""

from __future__ import annotations

import uuid

from hpcplane import ids


def test_request_id_is_an_upper_case_uuid4() -> None:
    made = [ids.request_id() for _ in range(2000)]
    assert len(set(made)) == len(made)
    for text in made:
        parsed = uuid.UUID(text)
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122)
        assert text == str(parsed).upper()
    # Every variant digit (8, 9, A, B) turns up: the two random bits under the variant are kept.
    assert {text[19] for text in made} == set("89AB")
