"""Payload validation: schema faults and text PostgreSQL cannot store are one 422."""

import pytest

from scanline.errors import InvalidInput
from scanline.validation import compiled, strict_object, validate

SCHEMA = strict_object({"name": {"type": "string"},
                        "tags": {"type": "array", "items": {"type": "string"}}}, ["name"])


@pytest.mark.parametrize(("data", "pointer", "detail"), [
    ({"name": "a\x00b"}, "/name", "contains a NUL character"),
    ({"name": "a\ud800b"}, "/name", "is not valid Unicode (a lone surrogate)"),
    ({"name": "ok", "tags": ["fine", "x\x00"]}, "/tags/1", "contains a NUL character"),
])
def test_unstorable_text_is_invalid_input_without_quoting_it(
        data: dict[str, object], pointer: str, detail: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        validate(data, SCHEMA)
    assert raised.value.errors == [{"pointer": pointer, "detail": detail}]


def test_any_other_unicode_is_accepted() -> None:
    data = {"name": "Zoë 数字 🙂", "tags": ["ünïcödé"]}
    assert validate(data, SCHEMA) is data


def test_a_long_value_is_not_quoted_back_in_full() -> None:
    schema = {"type": "object", "properties": {
        "languages": {"type": "string", "maxLength": 64, "pattern": "^[a-z+]+$"}}}
    with pytest.raises(InvalidInput) as refused:
        compiled(schema).check({"languages": "X" * 5000})
    details = [e["detail"] for e in refused.value.errors]
    assert len(details) == 2 and all(len(d) < 200 and "5000 long" in d for d in details)
