"""OCR job logic that needs no server: keys, reading order, results, views, scoring."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bench.ocr_samples import word_recall
from scanline.domain import ocr
from scanline.domain.ocr import Job, Line, PageResult, Recognition, Word, reading_order, rectangle


def word(text: str, left: int, top: int, width: int = 40, height: int = 20) -> Word:
    return Word(text, rectangle(left, top, width, height))  # type: ignore[arg-type]


def test_object_key_is_made_from_ids_only_and_cannot_escape_the_user_prefix() -> None:
    assert ocr.object_key("7f1c", "job-1") == "uploads/7f1c/job-1"
    assert ocr.object_key("../x/y", "j") == "uploads/..%2Fx%2Fy/j"


def test_reading_order_sorts_lines_top_down_and_words_left_to_right() -> None:
    words = [word("world", 120, 12), word("second", 10, 60), word("hello", 10, 10),
             word("line", 100, 62)]
    assert [line.text for line in reading_order(words)] == ["hello world", "second line"]
    assert reading_order([]) == []


def test_a_page_result_has_lines_of_words_with_boxes_and_confidence() -> None:
    line = Line((Word("Hello", rectangle(10, 10, 50, 20), 0.91),  # type: ignore[arg-type]
                 Word("there", rectangle(70, 12, 50, 20), 0.5)))  # type: ignore[arg-type]
    page = PageResult(2, 800, 600, 90, Recognition("Hello there", [line])).to_json()
    assert page == {"page": 2, "width": 800, "height": 600, "angle": 90, "text": "Hello there",
                    "lines": [{"text": "Hello there",
                               "box": [[10, 10], [120, 10], [120, 32], [10, 32]],
                               "paragraph": 1, "confidence": 0.705,
                               "words": [{"text": "Hello", "confidence": 0.91,
                                          "box": [[10, 10], [60, 10], [60, 30], [10, 30]]},
                                         {"text": "there", "confidence": 0.5,
                                          "box": [[70, 12], [120, 12], [120, 32], [70, 32]]}]}]}
    pages = [page, {**page, "page": 3, "text": "more", "lines": []}]
    assert ocr.document_text(pages) == "Hello there\fmore"
    assert [(w["text"], w["page"]) for w in ocr.flat_words(pages)] == [("Hello", 2), ("there", 2)]


def test_job_view_has_the_documented_fields() -> None:
    job = Job(id="j1", user_id="u1", status=ocr.DONE, object_key="uploads/u1/j1",
              content_type="image/png", size=10, created_at=datetime(2025, 1, 1, tzinfo=UTC),
              engine="tesseract", text="hi", words=[{"text": "hi", "box": [[0, 0]] * 4}],
              timings={"engine_ms": 1.0}, completed_at=datetime(2025, 1, 1, 0, 1, tzinfo=UTC))
    view = ocr.job_view(job, "http://x/function/ocr-jobs/j1", timedelta(days=7))
    assert set(view) == set(ocr.JOB["properties"])
    assert view["status"] == "done" and view["completed_at"].startswith("2025-01-01T00:01")
    assert view["expires_at"].startswith("2025-01-08T00:01") and view["callback"] is None
    assert view["words"] == job.words and view["pages"] is None  # a job from before pages
    paged = ocr.job_view(Job(**{**job.__dict__, "words": None, "pages": [
        {"page": 1, "width": 1, "height": 1, "angle": 0, "text": "hi", "lines": [
            {"text": "hi", "box": [[0, 0]] * 4,
             "words": [{"text": "hi", "box": [[0, 0]] * 4, "confidence": 1.0}]}]}]}), "u",
        timedelta(days=7))
    assert paged["words"] == [{"text": "hi", "box": [[0, 0]] * 4, "confidence": 1.0,
                               "page": 1}]


def test_completion_email_says_where_the_results_are_not_what_they_say() -> None:
    page = {"page": 1, "width": 9, "height": 9, "angle": 0, "text": "The quick brown fox",
            "lines": [{"text": "The quick brown fox", "box": [[0, 0]] * 4,
                       "words": [{"text": w, "box": [[0, 0]] * 4, "confidence": 0.9}
                                 for w in ("The", "quick", "brown", "fox")]}]}
    url = ocr.job_url("https://scan.example", "j1")
    mail = ocr.completion_email("a@example.com", "j1", url, [page, {**page, "lines": []}])
    assert "j1" in mail.subject and mail.to == "a@example.com"
    assert "quick" not in mail.text and "2 pages, 4 words read" in mail.text
    assert f"{url}/text" in mail.text and url == "https://scan.example/function/ocr-jobs/j1"
    empty = ocr.completion_email("a@example.com", "j2", url, [{**page, "lines": []}])
    assert "1 page, no text found" in empty.text


def test_word_recall_follows_the_scans_readme_rule() -> None:
    assert word_recall("a b b c", "b a c") == 0.75  # multiset: one "b" missed
    curly = "It\u2019s \u201cfine\u201d \u2014 ok"
    assert word_recall("It's \"fine\" - ok", curly) == 1.0  # folding
    assert word_recall("Word", "word") == 0.0  # case-sensitive
    assert word_recall("e\u0301t\u00e9", "\u00e9t\u00e9") == 1.0  # NFC
