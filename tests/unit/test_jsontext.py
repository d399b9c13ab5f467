"""JSON from outside is parsed with bounds: each hostile shape is a BadRequest, not a crash."""

import pytest

from scanline import jsontext
from scanline.errors import BadRequest


@pytest.mark.parametrize(("text", "reason"), [
    ("[" * 1100 + "]" * 1100, "nested"),  # json.loads alone: RecursionError
    ("[" * 33 + "]" * 33, "nested"),  # under Python's limit, over ours
    ('{"a": ' * 40 + "1" + "}" * 40, "nested"),
    ("9" * 5000, "integer"),  # json.loads alone: ValueError (int/str digit limit)
    ("9007199254740992", "integer"), ("-9007199254740992", "integer"),
    ("NaN", "not a JSON value"), ("-Infinity", "not a JSON value"), ("1e400", "range"),
    ("\ud800", "not valid JSON"), ("{", "not valid JSON"),
    # Which copy counts differs between parsers (RFC 8259 §4): neither is guessed.
    ('{"email": "a@example.com", "email": "b@example.com"}', "more than once: email"),
    ('{"a": {"b": 1, "b": 2}}', "more than once: b"),
])
def test_hostile_documents_are_bad_requests(text: str, reason: str) -> None:
    with pytest.raises(BadRequest, match=reason):
        jsontext.loads(text.encode("utf-8", "surrogatepass"))


def test_ordinary_documents_are_read_as_json_reads_them() -> None:
    text = '{"a": [1, 2.5, -9007199254740991, "x", null, true], "b": {"c": {}}}'
    assert jsontext.loads(text) == {"a": [1, 2.5, -9007199254740991, "x", None, True],
                                    "b": {"c": {}}}
    assert jsontext.loads("[" * 32 + "]" * 32)  # exactly the bound
