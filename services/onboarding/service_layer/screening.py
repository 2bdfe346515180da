"""Sanctions/PEP screening: loading list versions, screening an artisan, rescreening everyone.

A fuzzy hit never rejects anybody: it opens a review case with the matched entry and score, and
holds the artisan at tier 0 (cap 0: no funds) until compliance decides. Approving the case as a
false positive gives back every tier the facts still earn; tier 3 needs a fresh review. Entries a compliance
officer has cleared as false positives for an artisan are not raised again for that artisan.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import logging
import threading
from collections.abc import Callable, Sequence

import sqlalchemy as sa
from sqlalchemy.orm import Session, undefer

from services.onboarding.adapters import artisans, kyc_reviews
from services.onboarding.adapters.artisan_sessions import revoke_all_sessions
from services.onboarding.adapters.orm import Artisan, KycReview, ScreeningList, ScreeningResult
from services.onboarding.adapters.screening_lists import (
    FetchedList,
    ListSource,
    ScreeningListError,
    fetch_list,
    parse_un_consolidated_list,
    redacted,
)
from services.onboarding.domain.screening import ListEntry, SanctionsList, ScreeningIndex
from services.onboarding.service_layer.artisans import TierPolicy
from services.onboarding.service_layer.kyc import (
    audit,
    change_tier,
    close_open_reviews,
    ensure_active,
    open_review,
    promote_if_earned,
)
from shared.db import UnitOfWork, utcnow
from shared.errors import Conflict, NotFound
from shared.ids import new_id

log = logging.getLogger(__name__)

SCREENING_ACTOR = "system:screening"


def load_list(uow: UnitOfWork, data: bytes, source: str) -> tuple[str, bool]:
    """Store a list version (parsed from UN consolidated-list XML); returns (version, is_new)."""
    return _store_list(uow, parse_un_consolidated_list(data), source)


@dataclasses.dataclass(frozen=True)
class ScreeningSources:
    """The lists in force together (the sanctions list, then the PEP list), and the fetch timeout."""

    lists: tuple[ListSource, ...]
    timeout_seconds: float


def refresh_lists(
    uow: UnitOfWork,
    sources: ScreeningSources,
    *,
    now: dt.datetime | None = None,
    fetch: Callable[..., FetchedList] = fetch_list,
) -> tuple[str, bool]:
    """Fetch every configured list, refuse a stale one, and store them as one list version in force;
    returns (version, is_new). On any error (``ScreeningListError``) the previous version stays in force."""
    now = now or utcnow()
    fetched = [fetch(source, timeout_seconds=sources.timeout_seconds) for source in sources.lists]
    for one in fetched:
        check_fresh(one, now)
    return _store_list(
        uow,
        _combined([one.parsed for one in fetched]),
        " + ".join(redacted(one.source.location) for one in fetched),
    )


def check_fresh(fetched: FetchedList, now: dt.datetime) -> None:
    """A list older than its source's max age is refused: screening against it would miss recent
    designations. A list whose age cannot be told is refused when there is a max age."""
    max_age = fetched.source.max_age
    if max_age is None:
        return
    setting = fetched.source.max_age_setting or "the max age"
    if fetched.published_at is None:
        raise ScreeningListError(
            f"{fetched.source.setting}: the list says not when it was published ({setting})"
        )
    if now - fetched.published_at > max_age:
        raise ScreeningListError(
            f"{fetched.source.setting}: the list was published {fetched.published_at:%Y-%m-%d %H:%M} UTC, "
            f"older than {setting} allows"
        )


def _combined(lists: Sequence[SanctionsList]) -> SanctionsList:
    if len(lists) == 1:
        return lists[0]
    version = "+".join(one.version for one in lists)
    if len(version) > 80:  # the column's width
        version = "sha256:" + hashlib.sha256(version.encode()).hexdigest()[:32]
    return SanctionsList(version=version, entries=tuple(entry for one in lists for entry in one.entries))


def _store_list(uow: UnitOfWork, parsed: SanctionsList, source: str) -> tuple[str, bool]:
    with uow:
        if uow.session.get(ScreeningList, parsed.version) is not None:
            return parsed.version, False
        uow.session.add(
            ScreeningList(
                version=parsed.version,
                source=source[:300],
                entry_count=len(parsed.entries),
                entries=[dataclasses.asdict(entry) for entry in parsed.entries],
                loaded_at=utcnow(),
            )
        )
        uow.commit()
        return parsed.version, True


class ScreeningIndexCache:
    """The in-force list's index, rebuilt only when a newer version has been loaded."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._index: ScreeningIndex | None = None

    def current(self, session: Session) -> ScreeningIndex | None:
        version = session.scalar(
            sa.select(ScreeningList.version)
            .order_by(ScreeningList.loaded_at.desc(), ScreeningList.version.desc())
            .limit(1)
        )
        if version is None:
            return None
        with self._lock:
            if self._index is None or self._index.version != version:
                row = session.scalar(
                    sa.select(ScreeningList)
                    .options(undefer(ScreeningList.entries))
                    .where(ScreeningList.version == version)
                )
                entries = tuple(
                    ListEntry(**{**entry, "names": tuple(entry["names"])}) for entry in row.entries
                )
                self._index = ScreeningIndex(SanctionsList(version=version, entries=entries))
            return self._index


def _cleared_references(session: Session, artisan_id: str) -> set[str]:
    cleared: set[str] = set()
    for details in session.scalars(
        sa.select(KycReview.details).where(
            KycReview.artisan_id == artisan_id,
            KycReview.kind == "screening_hit",
            KycReview.status == "approved",
        )
    ):
        cleared.update(match["reference"] for match in details.get("matches", []))
    return cleared


def screen_artisan(
    uow: UnitOfWork,
    artisan: Artisan,
    index: ScreeningIndex | None,
    *,
    threshold: float,
    tiers: TierPolicy,
    actor: str = SCREENING_ACTOR,
) -> ScreeningResult | None:
    """Screen one artisan in the caller's transaction. Returns None when no list is loaded yet.

    ``actor``: who caused this screening (the system at registration and in the nightly sweep, an
    officer's id when they asked for it); a tier it takes away, and a change it makes to a waiting
    case, are recorded under that name. The case itself is always opened by the screening: the
    officer who asked for the rescreen did not cause the match, and may decide it."""
    if index is None:
        return None
    session = uow.session
    cleared = _cleared_references(session, artisan.id)
    matches = [m for m in index.screen(artisan.full_name, threshold) if m.entry.reference not in cleared]
    result = ScreeningResult(
        id=new_id("scr"),
        artisan_id=artisan.id,
        list_version=index.version,
        screened_name=artisan.full_name,
        outcome="hit" if matches else "clear",
        matches=[
            {
                "reference": m.entry.reference,
                "list_type": m.entry.list_type,
                "entry_name": m.entry.primary_name,
                "matched_name": m.matched_name,
                "score": m.score,
            }
            for m in matches
        ],
        created_at=utcnow(),
    )
    session.add(result)
    if not matches:
        if artisan.screening_status != "hit":
            artisan.screening_status = "clear"
        return result
    artisan.screening_status = "hit"
    # Held at tier 0 until compliance decides: every session ends with the change.
    revoke_all_sessions(session, artisan.id, "screening_hit")
    waiting = kyc_reviews.open_for(session, artisan.id, kind="screening_hit")
    if not waiting:
        open_review(
            session,
            artisan,
            kind="screening_hit",
            submitted_by=SCREENING_ACTOR,
            details={
                "list_version": index.version,
                "screening_result_id": result.id,
                "matches": result.matches,
            },
        )
    else:
        _bring_up_to_date(session, waiting[0], result, actor)
    if artisan.kyc_tier > 0:
        change_tier(uow, artisan, 0, reason_code="screening_hit", actor=actor, tiers=tiers)
        close_open_reviews(session, artisan, kind="tier_upgrade")
    return result


def _bring_up_to_date(session: Session, review: KycReview, result: ScreeningResult, actor: str) -> None:
    """A screening-hit case still waiting when a newer list matches differently: the officer who
    decides it must see what the lists in force say, so the case takes the new matches and list
    version (what it said before is kept in the audit entry). The same matches again change nothing."""
    details = review.details or {}
    if details.get("matches") == result.matches and details.get("list_version") == result.list_version:
        return
    review.details = {
        **details,
        "list_version": result.list_version,
        "screening_result_id": result.id,
        "matches": result.matches,
    }
    before = ", ".join(match["reference"] for match in details.get("matches", [])) or "none"
    after = ", ".join(match["reference"] for match in result.matches)
    audit(
        session,
        review.artisan_id,
        "review.matches_updated",
        actor,
        subject_id=review.id,
        note=(
            f"{details.get('list_version')} ({before}) -> {result.list_version} ({after}); "
            f"screening {result.id}"
        ),
    )


def make_registration_screener(
    cache: ScreeningIndexCache, *, threshold: float, tiers: TierPolicy
) -> Callable[[UnitOfWork, Artisan], None]:
    def screen(uow: UnitOfWork, artisan: Artisan) -> None:
        uow.session.flush()
        screen_artisan(uow, artisan, cache.current(uow.session), threshold=threshold, tiers=tiers)

    return screen


@dataclasses.dataclass
class RescreenReport:
    list_version: str | None
    screened: int = 0
    hits: int = 0
    demoted: int = 0
    promoted: int = 0


def rescreen_all(
    uow_factory, cache: ScreeningIndexCache, *, threshold: float, tiers: TierPolicy, batch_size: int = 200
) -> RescreenReport:
    """Screen every active artisan against the list in force, one transaction per batch.

    Artisans whose screening was pending (no list when they registered) may climb to tier 2 now.
    """
    with uow_factory() as uow:
        index = cache.current(uow.session)
    report = RescreenReport(list_version=index.version if index else None)
    if index is None:
        return report
    after = ""
    while True:
        with uow_factory() as uow:
            session = uow.session
            batch = artisans.locked_active_after(session, after, batch_size)
            if not batch:
                return report
            for artisan in batch:
                before = artisan.kyc_tier
                result = screen_artisan(uow, artisan, index, threshold=threshold, tiers=tiers)
                if result is not None and result.outcome == "clear":
                    promote_if_earned(uow, artisan, actor=SCREENING_ACTOR, tiers=tiers)
                report.screened += 1
                report.hits += int(result is not None and result.outcome == "hit")
                report.demoted += int(artisan.kyc_tier < before)
                report.promoted += int(artisan.kyc_tier > before)
            uow.commit()
            after = batch[-1].id


class NoScreeningList(Conflict):
    code = "screening_list_unavailable"
    title = "No sanctions list is loaded"


@dataclasses.dataclass(frozen=True)
class Rescreening:
    """One artisan screened again at an officer's request, and where it left them."""

    result: ScreeningResult
    screening_status: str
    kyc_tier: int
    review_id: str | None  # the screening-hit case waiting for a decision, if any


def rescreen_artisan(
    uow: UnitOfWork,
    artisan_id: str,
    cache: ScreeningIndexCache,
    *,
    officer: str,
    threshold: float,
    tiers: TierPolicy,
) -> Rescreening:
    """Screen one artisan against the lists in force now, at a compliance officer's request.

    The same rules as screening at registration and the nightly sweep: a hit opens a review case (one
    at a time; a case already waiting takes the new matches when a newer list matches differently)
    and holds the artisan at tier 0; a clear result lets an artisan whose screening was pending climb
    to the tier the facts earn. A tier change, down or up, is recorded under the officer's id (they
    caused it) and leaves as an event through the outbox in the same transaction; the officer's
    request is in the audit log. Asked again, it screens again and changes nothing more: no second
    case, no second tier change.
    """
    with uow:
        session = uow.session
        artisan = artisans.locked(session, artisan_id)
        if artisan is None:
            raise NotFound(f"No artisan {artisan_id!r}.", param="artisan_id")
        ensure_active(artisan)
        result = screen_artisan(
            uow, artisan, cache.current(session), threshold=threshold, tiers=tiers, actor=officer
        )
        if result is None:
            raise NoScreeningList(
                "No sanctions list is loaded yet: load one first (hirfa onboarding screening load)."
            )
        if result.outcome == "clear":
            promote_if_earned(uow, artisan, actor=officer, tiers=tiers)
        audit(
            session,
            artisan.id,
            "screening.rerun",
            officer,
            subject_id=result.id,
            note=f"{result.outcome} against {result.list_version}",
        )
        session.flush()
        waiting = kyc_reviews.open_for(session, artisan.id, kind="screening_hit")
        rescreening = Rescreening(
            result=result,
            screening_status=artisan.screening_status,
            kyc_tier=artisan.kyc_tier,
            review_id=waiting[0].id if waiting else None,
        )
        uow.commit()
        return rescreening
