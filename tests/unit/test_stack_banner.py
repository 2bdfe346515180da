"""`hirfa stack wait-ready` (make run's banner) waits for the console too and prints its link."""

from __future__ import annotations

from click.testing import CliRunner

from services import stack


def test_the_ready_banner_links_the_console(monkeypatch):
    waited = {}

    def ready(urls, timeout):
        waited.update(urls)
        return []

    monkeypatch.setattr(stack, "wait_for_ready", ready)
    monkeypatch.setenv("CONSOLE_PORT", "8104")
    result = CliRunner().invoke(stack.stack, ["wait-ready", "--exit"])
    assert result.exit_code == 0, result.output
    assert waited["console"] == "http://127.0.0.1:8104"
    assert "console     http://127.0.0.1:8104" in result.output


def test_the_banner_says_when_the_console_is_not_ready(monkeypatch):
    monkeypatch.setattr(stack, "wait_for_ready", lambda urls, timeout: ["console"])
    result = CliRunner().invoke(stack.stack, ["wait-ready", "--exit", "--timeout", "1"])
    assert result.exit_code == 1 and "console" in result.output
