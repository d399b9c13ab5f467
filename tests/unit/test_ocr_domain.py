"""OCR job logic that needs no server: keys, reading order, views, scoring."""

from __future__ import annotations

from datetime import UTC, datetime

from bench.ocr_samples import word_recall
from scanline.domain import ocr
from scanline.domain.ocr import Job, Word, reading_order, rectangle
from scanline.ocr.engines import _from_tesseract_data


def word(text: str, left: int, top: int, width: int = 40, height: int = 20) -> Word:
    return Word(text, rectangle(left, top, width, height))  # type: ignore[arg-type]


def test_object_key_is_made_from_ids_only_and_cannot_escape_the_user_prefix() -> None:
    assert ocr.object_key("7f1c", "job-1") == "uploads/7f1c/job-1"
    assert ocr.object_key("../x/y", "j") == "uploads/..%2Fx%2Fy/j"


def test_reading_order_sorts_lines_top_down_and_words_left_to_right() -> None:
    words = [word("world", 120, 12), word("second", 10, 60), word("hello", 10, 10),
             word("line", 100, 62)]
    assert reading_order(words) == "hello world\nsecond line"
    assert reading_order([]) == ""


def test_tesseract_tsv_becomes_lines_paragraphs_and_boxes() -> None:
    rows = [  # level, block, par, line, text, left, top, width, height
        (1, 1, 0, 0, "", 0, 0, 500, 300), (5, 1, 1, 1, "Hello", 10, 10, 50, 20),
        (5, 1, 1, 1, "there", 70, 10, 50, 20), (5, 1, 1, 2, "again", 10, 40, 50, 20),
        (5, 1, 1, 2, " ", 0, 0, 0, 0), (5, 2, 1, 1, "Next", 10, 100, 40, 20)]
    keys = ("level", "block_num", "par_num", "line_num", "text", "left", "top", "width",
            "height")
    data = {k: [row[i] for row in rows] for i, k in enumerate(keys)}
    result = _from_tesseract_data(data)
    assert result.text == "Hello there\nagain\n\nNext"
    assert [w.text for w in result.words] == ["Hello", "there", "again", "Next"]
    assert result.words[1].to_json() == {"text": "there",
                                         "box": [[70, 10], [120, 10], [120, 30], [70, 30]]}


def test_job_view_has_the_documented_fields() -> None:
    job = Job(id="j1", user_id="u1", status=ocr.DONE, object_key="uploads/u1/j1",
              content_type="image/png", size=10, created_at=datetime(2025, 1, 1, tzinfo=UTC),
              engine="tesseract", text="hi", words=[{"text": "hi", "box": [[0, 0]] * 4}],
              timings={"engine_ms": 1.0}, completed_at=datetime(2025, 1, 1, 0, 1, tzinfo=UTC))
    view = ocr.job_view(job, "http://x/function/ocr-jobs/j1")
    assert {"job_id", "status", "text", "words", "engine", "timings", "error"} <= set(view)
    assert view["status"] == "done" and view["completed_at"].startswith("2025-01-01T00:01")


def test_completion_email_carries_the_text() -> None:
    mail = ocr.completion_email("a@example.com", "j1", "The quick brown fox")
    assert "j1" in mail.subject and "The quick brown fox" in mail.text
    assert mail.to == "a@example.com"
    assert "no text was found" in ocr.completion_email("a@example.com", "j2", "  ").text


def test_word_recall_follows_the_scans_readme_rule() -> None:
    assert word_recall("a b b c", "b a c") == 0.75  # multiset: one "b" missed
    curly = "It\u2019s \u201cfine\u201d \u2014 ok"
    assert word_recall("It's \"fine\" - ok", curly) == 1.0  # folding
    assert word_recall("Word", "word") == 0.0  # case-sensitive
    assert word_recall("e\u0301t\u00e9", "\u00e9t\u00e9") == 1.0  # NFC
