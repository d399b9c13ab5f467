"""The committed manifests are exactly what infra/generate makes from stack.yml."""

import pytest

from infra import generate
from infra.local.stackfile import duration_seconds


def test_generated_files_are_in_sync_with_stack_yml() -> None:
    stale = [str(p.relative_to(generate.REPO)) for p in generate.stale()]
    assert stale == [], f"run `python -m infra.generate` and commit: {stale}"


def test_check_mode_reports_a_stale_file(tmp_path, monkeypatch) -> None:
    target = tmp_path / "services.yaml"
    target.write_text("stale\n")
    monkeypatch.setattr(generate, "REPO", tmp_path)
    monkeypatch.setattr(generate, "outputs", lambda: {target: "fresh\n"})
    assert generate.main(["--check"]) == 1
    target.write_text("fresh\n")
    assert generate.main(["--check"]) == 0


def test_go_durations_parse_like_the_watchdog() -> None:
    assert duration_seconds("1m30s") == 90
    assert duration_seconds("125s") == 125


@pytest.mark.parametrize("bad", ["30", "3x", "s", "30s "])
def test_malformed_durations_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        duration_seconds(bad)
