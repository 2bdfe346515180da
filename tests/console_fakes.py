"""Fakes of the console's adapters: the three services' APIs and staff sign-in, in memory."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator
from typing import Any

from services.console.adapters.hirfa_api import ApiError, Document, HirfaApis
from services.console.adapters.staff_auth import Enrolment, EnrolmentRequired, StaffMember, StaffSession

Handler = Callable[..., Any]


@dataclasses.dataclass
class Call:
    method: str
    token: str
    path: str
    params: dict[str, Any]
    body: dict[str, Any] | None = None
    idempotency_key: str = ""


class FakeServiceApi:
    """Answers by (method, path pattern); an unknown path is a 404, as a service would say.
    A handler returning an ``ApiError`` answers with it."""

    def __init__(self) -> None:
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self.calls: list[Call] = []
        self.documents: dict[str, tuple[str, bytes]] = {}
        self.closed_streams: list[str] = []

    def on(self, method: str, pattern: str, handler: Handler | Any) -> None:
        answer = handler if callable(handler) else (lambda *_args, **_kwargs: handler)
        self.routes.append((method, re.compile(pattern + "$"), answer))

    def get(self, token: str, path: str, **params: Any) -> Any:
        return self._answer(Call("GET", token, path, params))

    def post(self, token: str, path: str, body: dict | None = None, *, idempotency_key: str = "") -> Any:
        return self._answer(Call("POST", token, path, {}, body, idempotency_key))

    def stream(self, token: str, path: str) -> Document:
        self.calls.append(Call("STREAM", token, path, {}))
        if path not in self.documents:
            raise ApiError(404, "not_found")
        content_type, data = self.documents[path]

        def chunks() -> Iterator[bytes]:
            for start in range(0, len(data), 1024):
                yield data[start : start + 1024]

        return Document(
            content_type=content_type, chunks=chunks(), close=lambda: self.closed_streams.append(path)
        )

    def _answer(self, call: Call) -> Any:
        self.calls.append(call)
        for method, pattern, handler in reversed(self.routes):
            match = pattern.match(call.path)
            if method == call.method and match:
                answer = handler(call, **match.groupdict())
                if isinstance(answer, ApiError):
                    raise answer
                return answer
        raise ApiError(404, "not_found", call.path)


def fake_apis() -> HirfaApis:
    return HirfaApis(onboarding=FakeServiceApi(), payments=FakeServiceApi(), accounts=FakeServiceApi())  # type: ignore[arg-type]


STAFF = {
    "amina.compliance@hirfa.test": StaffMember(
        "stf_amina", "Amina Compliance", "amina.compliance@hirfa.test", ("compliance",)
    ),
    "salma.operator@hirfa.test": StaffMember(
        "stf_salma", "Salma Operator", "salma.operator@hirfa.test", ("operator",)
    ),
}
PASSWORD = "demo-staff-password"
CODE = "123456"


class FakeStaffAuth:
    """Onboarding's staff sign-in: refresh tokens rotate (each one renews once), signing out
    revokes; ``refused`` makes every renewal fail with that error."""

    def __init__(self) -> None:
        self.not_enrolled: set[str] = set()
        self.enrolment_tokens: dict[str, str] = {}
        self.enrolments_started = 0
        self.live_refresh_tokens: dict[str, StaffMember] = {}
        self.renewals = 0
        self.signed_out: list[str] = []
        self.refused: ApiError | None = None

    def _session(self, staff: StaffMember, access_token: str) -> StaffSession:
        refresh_token = f"refresh-{staff.id}-{len(self.live_refresh_tokens) + self.renewals}"
        self.live_refresh_tokens[refresh_token] = staff
        return StaffSession(
            access_token=access_token, expires_in=900, staff=staff, refresh_token=refresh_token
        )

    def refresh(self, refresh_token: str) -> StaffSession:
        if self.refused is not None:
            raise self.refused
        staff = self.live_refresh_tokens.pop(refresh_token, None)
        if staff is None:
            raise ApiError(401, "refresh_token_revoked")
        self.renewals += 1
        return self._session(staff, f"token-of-{staff.id}-renewed-{self.renewals}")

    def sign_out(self, refresh_token: str) -> None:
        self.signed_out.append(refresh_token)
        self.live_refresh_tokens.pop(refresh_token, None)

    def sign_in(self, email: str, password: str, totp_code: str) -> StaffSession:
        staff = STAFF.get(email)
        if staff is None or password != PASSWORD:
            raise ApiError(401, "invalid_credentials")
        if email in self.not_enrolled:
            self.enrolment_tokens["enr_" + staff.id] = email
            raise EnrolmentRequired("enr_" + staff.id)
        if totp_code != CODE:
            raise ApiError(401, "invalid_credentials")
        return self._session(staff, f"token-of-{staff.id}")

    def start_enrolment(self, enrolment_token: str) -> Enrolment:
        if enrolment_token not in self.enrolment_tokens:
            raise ApiError(401, "invalid_enrolment_token")
        self.enrolments_started += 1
        return Enrolment(
            otpauth_uri="otpauth://totp/Hirfa:amina?secret=JBSWY3DPEHPK3PXP&issuer=Hirfa",
            secret="JBSWY3DPEHPK3PXP",
        )

    def confirm_enrolment(self, enrolment_token: str, totp_code: str) -> None:
        if totp_code != CODE:
            raise ApiError(422, "totp_incorrect")
        self.not_enrolled.discard(self.enrolment_tokens.pop(enrolment_token))
