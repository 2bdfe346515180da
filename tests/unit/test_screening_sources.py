"""Sanctions and PEP lists come from their configured sources (a path or a URL, fetched with a
timeout), and a list older than its source's max age is refused."""

from __future__ import annotations

import datetime as dt
import os

import pytest
import requests

from services.onboarding.adapters.screening_lists import (
    FetchedList,
    ListSource,
    ScreeningListError,
    fetch_list,
    redacted,
)
from services.onboarding.bootstrap import screening_sources
from services.onboarding.config import BUNDLED_SANCTIONS_LIST, OnboardingConfig
from services.onboarding.domain.screening import SanctionsList
from services.onboarding.service_layer.screening import ScreeningSources, check_fresh, refresh_lists

NOW = dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.UTC)


def xml_list(generated: str | None, reference: str = "ZZi.001", name: str = "Fictional Person") -> bytes:
    attribute = f' dateGenerated="{generated}"' if generated else ""
    return (
        f"<CONSOLIDATED_LIST{attribute}><INDIVIDUALS><INDIVIDUAL><DATAID>1</DATAID>"
        f"<FIRST_NAME>{name}</FIRST_NAME><REFERENCE_NUMBER>{reference}</REFERENCE_NUMBER>"
        "</INDIVIDUAL></INDIVIDUALS><ENTITIES/></CONSOLIDATED_LIST>"
    ).encode()


def source(location: str, *, kind: str = "sanctions", max_age_hours: int | None = 48) -> ListSource:
    max_age = dt.timedelta(hours=max_age_hours) if max_age_hours else None
    prefix = f"ONBOARDING_{'SANCTIONS' if kind == 'sanctions' else 'PEP'}_LIST"
    return ListSource(
        kind=kind,
        location=location,
        max_age=max_age,
        setting=f"{prefix}_SOURCE",
        max_age_setting=f"{prefix}_MAX_AGE_HOURS",
    )


class FakeResponse:
    def __init__(self, status_code: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.status_code = status_code
        self.body = body
        self.headers = headers or {}

    def __enter__(self):
        return self

    def __exit__(self, *_exc):
        return False

    def iter_content(self, size: int):
        for start in range(0, len(self.body), size):
            yield self.body[start : start + size]


class FakeSession:
    def __init__(self, response: FakeResponse | Exception) -> None:
        self.response = response
        self.calls: list[dict] = []

    def get(self, url, **kwargs):
        self.calls.append({"url": url, **kwargs})
        if isinstance(self.response, Exception):
            raise self.response
        return self.response


def test_a_list_from_a_url_is_fetched_with_a_timeout():
    session = FakeSession(FakeResponse(200, xml_list("2026-12-05T00:00:00.000Z")))

    fetched = fetch_list(source("https://lists.example/un.xml"), timeout_seconds=7.5, session=session)

    assert session.calls[0]["timeout"] == 7.5
    assert fetched.published_at == dt.datetime(2026, 12, 5, tzinfo=dt.UTC)
    assert [entry.reference for entry in fetched.parsed.entries] == ["ZZi.001"]


def test_a_list_without_a_date_is_dated_by_the_response_last_modified():
    response = FakeResponse(200, xml_list(None), {"Last-Modified": "Sat, 05 Dec 2026 10:00:00 GMT"})

    fetched = fetch_list(
        source("https://lists.example/pep.xml"), timeout_seconds=5, session=FakeSession(response)
    )

    assert fetched.published_at == dt.datetime(2026, 12, 5, 10, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    "outcome",
    [FakeResponse(503, b"busy"), requests.Timeout("read timed out"), requests.ConnectionError("refused")],
)
def test_a_failed_fetch_names_the_setting_and_never_the_credentials(outcome):
    url = "https://user:list-password@lists.example/pep.xml?token=list-token"

    with pytest.raises(ScreeningListError) as refused:
        fetch_list(source(url, kind="PEP"), timeout_seconds=5, session=FakeSession(outcome))

    message = str(refused.value)
    assert "ONBOARDING_PEP_LIST_SOURCE" in message
    assert "list-password" not in message and "list-token" not in message
    assert redacted(url) == "https://lists.example/pep.xml"


def test_pep_entries_are_labelled_pep():
    session = FakeSession(FakeResponse(200, xml_list("2026-12-05T00:00:00Z")))

    fetched = fetch_list(
        source("https://lists.example/pep.xml", kind="PEP"), timeout_seconds=5, session=session
    )

    assert [entry.list_type for entry in fetched.parsed.entries] == ["PEP"]


def test_a_file_without_a_date_is_dated_by_its_modification_time(tmp_path):
    path = tmp_path / "pep.xml"
    path.write_bytes(xml_list(None))
    os.utime(path, (NOW.timestamp(), NOW.timestamp()))

    fetched = fetch_list(source(str(path), kind="PEP"), timeout_seconds=5)

    assert fetched.published_at == NOW


def test_a_missing_file_names_the_setting(tmp_path):
    with pytest.raises(ScreeningListError, match="ONBOARDING_SANCTIONS_LIST_SOURCE"):
        fetch_list(source(str(tmp_path / "absent.xml")), timeout_seconds=5)


def fetched(published_at: dt.datetime | None, max_age_hours: int | None = 48) -> FetchedList:
    return FetchedList(
        source=source("https://lists.example/un.xml", max_age_hours=max_age_hours),
        parsed=SanctionsList(version="v", entries=()),
        published_at=published_at,
    )


def test_a_list_within_its_max_age_is_fresh():
    check_fresh(fetched(NOW - dt.timedelta(hours=47)), NOW)


def test_a_list_older_than_its_max_age_is_refused_naming_the_setting():
    with pytest.raises(ScreeningListError, match="ONBOARDING_SANCTIONS_LIST_MAX_AGE_HOURS"):
        check_fresh(fetched(NOW - dt.timedelta(hours=49)), NOW)


def test_a_list_of_unknown_age_is_refused_when_there_is_a_max_age():
    with pytest.raises(ScreeningListError, match="ONBOARDING_SANCTIONS_LIST_MAX_AGE_HOURS"):
        check_fresh(fetched(None), NOW)


def test_without_a_max_age_any_list_is_fresh():
    check_fresh(fetched(NOW - dt.timedelta(days=3650), max_age_hours=None), NOW)


def test_the_configured_sources_are_the_sanctions_list_then_the_pep_list():
    config = OnboardingConfig.from_env(
        "onboarding",
        environ={
            "ONBOARDING_SANCTIONS_LIST_SOURCE": "https://lists.example/un.xml",
            "ONBOARDING_SANCTIONS_LIST_MAX_AGE_HOURS": "48",
            "ONBOARDING_PEP_LIST_SOURCE": "/srv/pep.xml",
            "ONBOARDING_SCREENING_LIST_TIMEOUT_SECONDS": "12",
        },
    )

    sources = screening_sources(config)

    assert [(one.kind, one.location, one.max_age, one.max_age_setting) for one in sources.lists] == [
        (
            "sanctions",
            "https://lists.example/un.xml",
            dt.timedelta(hours=48),
            "ONBOARDING_SANCTIONS_LIST_MAX_AGE_HOURS",
        ),
        ("PEP", "/srv/pep.xml", None, "ONBOARDING_PEP_LIST_MAX_AGE_HOURS"),
    ]
    assert sources.timeout_seconds == 12
    assert screening_sources(config, sanctions_location="/tmp/un.xml").lists[0].location == "/tmp/un.xml"


def test_development_screens_against_the_bundled_sample_alone():
    sources = screening_sources(OnboardingConfig.from_env("onboarding", environ={}))

    assert [(one.location, one.max_age) for one in sources.lists] == [(str(BUNDLED_SANCTIONS_LIST), None)]


class RecordingUow:
    """Just enough of a unit of work for storing a list version."""

    def __init__(self) -> None:
        self.added: list = []
        self.session = self

    def __enter__(self):
        return self

    def __exit__(self, *_exc):
        return False

    def get(self, _model, _key):
        return None

    def add(self, row) -> None:
        self.added.append(row)

    def commit(self) -> None:
        pass


def test_refresh_stores_the_sanctions_and_pep_lists_as_one_version():
    lists = {
        "https://lists.example/un.xml": xml_list("2026-12-05T00:00:00Z", "ZZi.001", "Sanctioned Person"),
        "https://lists.example/pep.xml": xml_list("2026-12-05T06:00:00Z", "PEP.7", "Exposed Person"),
    }

    def fetch(one: ListSource, *, timeout_seconds: float) -> FetchedList:
        response = FakeResponse(200, lists[one.location])
        return fetch_list(one, timeout_seconds=timeout_seconds, session=FakeSession(response))

    sources = ScreeningSources(
        lists=(source("https://lists.example/un.xml"), source("https://lists.example/pep.xml", kind="PEP")),
        timeout_seconds=5,
    )
    uow = RecordingUow()

    version, is_new = refresh_lists(uow, sources, now=NOW, fetch=fetch)

    (stored,) = uow.added
    assert (version, is_new) == ("2026-12-05T00:00:00Z+2026-12-05T06:00:00Z", True)
    assert [entry["reference"] for entry in stored.entries] == ["ZZi.001", "PEP.7"]
    assert stored.source == "https://lists.example/un.xml + https://lists.example/pep.xml"


def test_refresh_stores_nothing_when_one_list_is_stale():
    def fetch(one: ListSource, *, timeout_seconds: float) -> FetchedList:
        generated = "2026-12-05T00:00:00Z" if one.kind == "sanctions" else "2026-10-01T00:00:00Z"
        response = FakeResponse(200, xml_list(generated, one.kind))
        return fetch_list(one, timeout_seconds=timeout_seconds, session=FakeSession(response))

    sources = ScreeningSources(
        lists=(source("https://lists.example/un.xml"), source("https://lists.example/pep.xml", kind="PEP")),
        timeout_seconds=5,
    )
    uow = RecordingUow()

    with pytest.raises(ScreeningListError, match="ONBOARDING_PEP_LIST_MAX_AGE_HOURS"):
        refresh_lists(uow, sources, now=NOW, fetch=fetch)
    assert uow.added == []


def test_a_list_downloaded_recently_is_fresh_though_its_publisher_has_not_amended_it(tmp_path):
    path = tmp_path / "consolidated.xml"
    path.write_bytes(xml_list("2026-10-01T00:00:00Z"))
    os.utime(path, (NOW.timestamp(), NOW.timestamp()))

    fetched = fetch_list(source(str(path)), timeout_seconds=5)

    assert fetched.published_at == NOW
    check_fresh(fetched, NOW + dt.timedelta(hours=1))
