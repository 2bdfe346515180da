"""The 3-D Secure challenge, as the buyer's browser sees it (no API key: the buyer has none).

``GET /3ds/<id>`` is a small HTML page showing the amount and the card, with two buttons,
Authenticate and Fail, that post the form field ``outcome=authenticate|fail`` to ``POST /3ds/<id>``.
That records the buyer's answer (the first answer stands; posting again changes nothing) and answers
303 to the transaction's ``return_url`` as given, nothing appended. Without a ``return_url`` it answers
a page telling the buyer to go back to the merchant. An id that is not a 3-D Secure transaction is
404; an outcome other than the two is 400.

The sandbox does not finish the transaction by itself: the merchant calls
``POST /v1/transactions/<id>/3ds/complete``, which authorises (``authenticate``) or declines
(``fail``, ``authentication_failed``) and sends that callback.
"""

from __future__ import annotations

from flask import Blueprint, Flask, Response, redirect, request
from markupsafe import escape

from sandbox.m2t.gateway import THREE_DS_OUTCOMES, current_gateway

blueprint = Blueprint("three_ds", __name__)

PUBLIC_ENDPOINTS = frozenset({"three_ds.challenge_page", "three_ds.challenge_answer"})

_ANSWERED = {"authenticate": "authenticated", "fail": "failed authentication"}

_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: sans-serif; max-width: 28rem; margin: 3rem auto">
<h1>{title}</h1>
{content}
</body>
</html>
"""


def _page(title: str, content: str, status: int = 200) -> Response:
    body = _PAGE.format(title=escape(title), content=content)
    return Response(body, status=status, mimetype="text/html")


def _not_found() -> Response:
    return _page("Not found", "<p>There is no 3-D Secure challenge at this address.</p>", 404)


@blueprint.get("/3ds/<transaction_id>")
def challenge_page(transaction_id: str):
    challenge = current_gateway().three_ds_challenge(transaction_id)
    if challenge is None:
        return _not_found()
    major, minor = divmod(challenge.amount, 100)
    answered = ""
    if challenge.outcome is not None:
        answered = f"<p><strong>Already answered: {escape(_ANSWERED[challenge.outcome])}.</strong></p>"
    content = f"""<p>M2T sandbox: confirm this payment of <strong>{major}.{minor:02d} {escape(challenge.currency)}</strong>
with your {escape(challenge.brand)} card ending in <strong>{escape(challenge.last4)}</strong>.</p>
{answered}
<form method="post">
  <button type="submit" name="outcome" value="authenticate">Authenticate</button>
  <button type="submit" name="outcome" value="fail">Fail</button>
</form>"""
    return _page("3-D Secure", content)


@blueprint.post("/3ds/<transaction_id>")
def challenge_answer(transaction_id: str):
    gateway = current_gateway()
    challenge = gateway.three_ds_challenge(transaction_id)
    if challenge is None:
        return _not_found()
    outcome = request.form.get("outcome", "")
    if outcome not in THREE_DS_OUTCOMES:
        return _page("Bad request", "<p>outcome must be authenticate or fail.</p>", 400)
    gateway.record_three_ds_outcome(transaction_id, outcome)
    if challenge.return_url:
        return redirect(challenge.return_url, code=303)
    return _page("3-D Secure", "<p>Done. You can go back to the merchant's site.</p>")


def register(app: Flask) -> None:
    app.register_blueprint(blueprint)
