"""Mobile wallets (request-to-pay): the buyer approves the payment in their wallet app, or does not.

``POST /v1/transactions`` with ``method: mobile_wallet`` answers ``pending_approval`` at once, with
``wallet.expires_at`` = ``created`` + ``wallet_expiry_seconds``, and sends a
``transaction.pending_approval`` callback. The phone (a Moroccan mobile in E.164, ``+2126…`` or
``+2127…``) picks what the buyer does, by the test-phone table in ``shared/test_instruments.py``
(which the payments service's in-memory fake gateway reads too). Here an approval or a refusal comes
``wallet_approval_delay_seconds`` after the request, with its callback (``transaction.captured`` /
``transaction.authorised``, or ``transaction.declined``); a request never answered reads expired once
``expires_at`` has passed, and no callback is ever sent for it: the merchant must poll.

A request is ``expired`` from the moment ``wallet_expiry_seconds`` have elapsed since it was made
(exactly, not rounded to the second: ``expires_at`` is the second in which that happens). The state is
worked out whenever the transaction is read, so no timer is needed. An approval that would come after
the expiry comes too late and is dropped. The buyer's full phone number is not kept: only its last
four digits and the behaviour it selects.
"""

from __future__ import annotations

import re

# Moroccan mobile numbers: +212 then 6 or 7 then eight digits.
MOROCCAN_MOBILE = re.compile(r"\+212[67][0-9]{8}")
