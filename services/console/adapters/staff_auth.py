"""Staff sign-in and second-factor enrolment, on onboarding (the token issuer).

The interface (issue 14): ``POST /v1/staff-sessions`` (signing in: an access token and a refresh
token), ``POST /v1/staff-sessions/refresh`` (staying signed in), ``POST /v1/staff-sessions/logout``,
``POST /v1/staff-enrolments`` and ``POST /v1/staff-enrolments/confirm``. Passwords, codes and
tokens pass through, never logged.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

import requests

from services.console.adapters.hirfa_api import ApiError, problem_of


@dataclasses.dataclass(frozen=True)
class StaffMember:
    id: str
    name: str
    email: str
    roles: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class StaffSession:
    access_token: str = dataclasses.field(repr=False)
    expires_in: int
    staff: StaffMember
    # Renews the access token once (each renewal gives the next one); empty: no renewal.
    refresh_token: str = dataclasses.field(default="", repr=False)


@dataclasses.dataclass(frozen=True)
class Enrolment:
    otpauth_uri: str = dataclasses.field(repr=False)
    secret: str = dataclasses.field(repr=False)


class EnrolmentRequired(Exception):
    """The person has no second factor yet: enrol first with this token."""

    def __init__(self, enrolment_token: str) -> None:
        super().__init__("totp_enrolment_required")
        self.enrolment_token = enrolment_token


class StaffAuth(Protocol):
    def sign_in(self, email: str, password: str, totp_code: str) -> StaffSession: ...

    def refresh(self, refresh_token: str) -> StaffSession: ...

    def sign_out(self, refresh_token: str) -> None: ...

    def start_enrolment(self, enrolment_token: str) -> Enrolment: ...

    def confirm_enrolment(self, enrolment_token: str, totp_code: str) -> None: ...


class HttpStaffAuth:
    def __init__(self, base_url: str, timeout: float, session: requests.Session | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.http = session or requests.Session()

    def __repr__(self) -> str:
        return f"HttpStaffAuth({self.base_url!r})"

    def sign_in(self, email: str, password: str, totp_code: str) -> StaffSession:
        try:
            body = self._post(
                "/v1/staff-sessions", {"email": email, "password": password, "totp_code": totp_code}
            )
        except _Problem as problem:
            if problem.error.code == "totp_enrolment_required" and problem.body.get("enrolment_token"):
                raise EnrolmentRequired(str(problem.body["enrolment_token"])) from None
            raise problem.error from None
        return _session_of(body)

    def refresh(self, refresh_token: str) -> StaffSession:
        try:
            return _session_of(self._post("/v1/staff-sessions/refresh", {"refresh_token": refresh_token}))
        except _Problem as problem:
            raise problem.error from None

    def sign_out(self, refresh_token: str) -> None:
        try:
            self._post("/v1/staff-sessions/logout", {"refresh_token": refresh_token})
        except _Problem as problem:
            raise problem.error from None

    def start_enrolment(self, enrolment_token: str) -> Enrolment:
        try:
            body = self._post("/v1/staff-enrolments", {"enrolment_token": enrolment_token})
        except _Problem as problem:
            raise problem.error from None
        return Enrolment(otpauth_uri=body["otpauth_uri"], secret=body["secret"])

    def confirm_enrolment(self, enrolment_token: str, totp_code: str) -> None:
        try:
            self._post(
                "/v1/staff-enrolments/confirm", {"enrolment_token": enrolment_token, "totp_code": totp_code}
            )
        except _Problem as problem:
            raise problem.error from None

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            response = self.http.post(self.base_url + path, json=body, timeout=self.timeout)
        except requests.RequestException:
            raise ApiError(0, "service_unavailable", "the sign-in service did not answer") from None
        if response.status_code >= 400:
            try:
                problem_body = response.json()
            except ValueError:
                problem_body = {}
            raise _Problem(problem_of(response), problem_body if isinstance(problem_body, dict) else {})
        try:
            body_read = response.json() if response.content else {}
        except ValueError:
            raise _unreadable() from None
        return body_read if isinstance(body_read, dict) else {}


def _unreadable() -> ApiError:
    # A success that is not the sign-in service's (a proxy's page, a truncated body): treated as no
    # answer, so a renewal keeps the old token while it lasts instead of failing every page.
    return ApiError(0, "service_unavailable", "the sign-in service gave an unreadable answer")


def _session_of(body: dict[str, Any]) -> StaffSession:
    try:
        staff = body["staff"]
        return StaffSession(
            access_token=body["access_token"],
            expires_in=int(body.get("expires_in", 900)),
            refresh_token=str(body.get("refresh_token") or ""),
            staff=StaffMember(
                id=staff["id"], name=staff["name"], email=staff["email"], roles=tuple(staff.get("roles", ()))
            ),
        )
    except (KeyError, TypeError, ValueError):
        raise _unreadable() from None


class _Problem(Exception):
    def __init__(self, error: ApiError, body: dict[str, Any]) -> None:
        super().__init__(error.code)
        self.error = error
        self.body = body
