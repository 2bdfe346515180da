"""`hirfa stack wait-ready` (make run's banner) waits for the console too and prints its link, and
where each relay, consumer and worker answers its probes; each has a port of its own."""

from __future__ import annotations

from click.testing import CliRunner

from services import stack
from shared.config import CONSOLE_PORT, PROBE_PORTS, SERVICE_PORTS
from tests.e2e.stack import procfile_commands


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


def test_every_relay_consumer_and_worker_of_make_run_has_a_probe_port_of_its_own():
    commands = procfile_commands()
    seen = {}
    for name, port in PROBE_PORTS.items():
        service = name.split("_")[0].upper()
        # The service's own setting, which wins over a PROBE_PORT left in the environment.
        assert f"env {service}_PROBE_PORT=${{{name.upper()}_PROBE_PORT:-{port}}} " in commands[name], name
        seen[port] = name
    assert len(seen) == len(PROBE_PORTS) == 9
    assert not set(seen) & {*SERVICE_PORTS.values(), CONSOLE_PORT, 8010, 8011, 8012, 9092}


def test_the_ready_banner_says_where_each_process_answers_its_probes(monkeypatch):
    monkeypatch.setattr(stack, "wait_for_ready", lambda urls, timeout: [])
    monkeypatch.setenv("PAYMENTS_RELAY_PROBE_PORT", "9102")
    result = CliRunner().invoke(stack.stack, ["wait-ready", "--exit"])
    assert result.exit_code == 0, result.output
    assert "onboarding  relay 8101   consumer 8111   worker 8121" in result.output
    assert "payments    relay 9102   consumer 8112   worker 8122" in result.output
