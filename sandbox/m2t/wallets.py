"""Mobile wallets (request-to-pay): the buyer approves the payment in their wallet app, or does not.

``POST /v1/transactions`` with ``method: mobile_wallet`` answers ``pending_approval`` at once, with
``wallet.expires_at`` = ``created`` + ``wallet_expiry_seconds``, and sends a
``transaction.pending_approval`` callback. The phone (a Moroccan mobile in E.164, ``+2126…`` or
``+2127…``) picks what the buyer does:

    phone           behaviour
    +212600000001   approves after wallet_approval_delay_seconds: captured (authorised when capture is
                    false), callback transaction.captured / transaction.authorised
    +212600000002   refuses after wallet_approval_delay_seconds: declined wallet_declined, callback
                    transaction.declined
    +212600000003   never answers: once expires_at has passed the transaction reads expired
                    (decline_code expired); no callback is ever sent, the merchant must poll
    any other       like +212600000001

A request is ``expired`` from the moment ``wallet_expiry_seconds`` have elapsed since it was made
(exactly, not rounded to the second: ``expires_at`` is the second in which that happens). The state is
worked out whenever the transaction is read, so no timer is needed. An approval that would come after
the expiry comes too late and is dropped. The buyer's full phone number is not kept: only its last
four digits and the behaviour it selects.
"""

from __future__ import annotations

import enum
import re

# Moroccan mobile numbers: +212 then 6 or 7 then eight digits.
MOROCCAN_MOBILE = re.compile(r"\+212[67][0-9]{8}")


class WalletBehaviour(enum.StrEnum):
    APPROVES = "approves"
    DECLINES = "declines"
    NEVER_ANSWERS = "never_answers"


TEST_PHONES: dict[str, WalletBehaviour] = {
    "+212600000001": WalletBehaviour.APPROVES,
    "+212600000002": WalletBehaviour.DECLINES,
    "+212600000003": WalletBehaviour.NEVER_ANSWERS,
}


def wallet_behaviour(phone: str) -> WalletBehaviour:
    return TEST_PHONES.get(phone, WalletBehaviour.APPROVES)
