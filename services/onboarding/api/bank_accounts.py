"""Artisans' bank accounts (link by RIB/IBAN, or open at a partner bank) and bank callbacks."""

from __future__ import annotations

from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint

from services.onboarding import problems as codes
from services.onboarding.api.context import service_context
from services.onboarding.api.schemas import (
    BankAccountListSchema,
    BankAccountRequestSchema,
    BankAccountSchema,
    CallbackAckSchema,
)
from services.onboarding.service_layer import bank_accounts
from shared.auth.flask import current_principal, require_any_scope
from shared.idempotency import idempotent
from shared.openapi import problems
from shared.problem_codes import INVALID_IBAN, INVALID_RIB, INVALID_SIGNATURE, UNKNOWN_BANK

blp = Blueprint("bank_accounts", __name__, url_prefix="/v1", description="Bank accounts for payouts.")


@blp.route("/artisans/<string:artisan_id>/bank-accounts")
class BankAccounts(MethodView):
    @require_any_scope("artisans:write", "self:write")
    @idempotent
    @blp.arguments(
        BankAccountRequestSchema,
        examples={
            "link": {
                "summary": "Link the artisan's existing account",
                "value": {
                    "mode": "link",
                    "rib": "001810007800020110620318",
                    "holder_name": "Fatima Zahra El Idrissi",
                    "make_default": True,
                },
            },
            "open": {
                "summary": "Open an account at a partner bank",
                "value": {"mode": "open", "bank": "banque_populaire", "make_default": True},
            },
        },
    )
    @blp.response(201, BankAccountSchema)
    @blp.alt_response(
        200, schema=BankAccountSchema, description="This account was already linked or requested."
    )
    @blp.alt_response(
        202,
        schema=BankAccountSchema,
        description="Opening requested (``pending``; the bank answers later), or a claim on an account "
        "another artisan holds (``pending_review``; compliance decides).",
    )
    @problems(
        INVALID_RIB,
        INVALID_IBAN,
        UNKNOWN_BANK,
        codes.KYC_TIER_TOO_LOW,
        codes.HOLDER_NAME_MISMATCH,
        codes.ACCOUNT_HOLDER_MISMATCH,
        codes.BANK_VERIFICATION_UNAVAILABLE,
        codes.BANK_ACCOUNT_IN_USE,
        codes.UNKNOWN_PARTNER_BANK,
        codes.ARTISAN_REJECTED,
    )
    def post(self, body, artisan_id):
        """Link an existing bank account, or open one at a partner bank.

        Link: ``mode: link`` with a RIB or IBAN, tier 1 or more, the holder verified by the bank.
        Open: ``mode: open`` at a partner bank, tier 2 or more. An opening answers 202 ``pending``; the account becomes usable when the bank confirms. A RIB
        another artisan holds answers 202 ``pending_review`` with the compliance case's
        ``review_id``; the account moves to this artisan if compliance approves."""
        context = service_context()
        settings = context.bank_accounts
        principal = current_principal()
        if body["mode"] == "link":
            outcome = bank_accounts.link_account(
                context.uow_factory(),
                artisan_id,
                bank_accounts.LinkAccount(
                    holder_name=body["holder_name"],
                    rib=body.get("rib"),
                    iban=body.get("iban"),
                    make_default=body["make_default"],
                ),
                principal,
                settings,
            )
            if outcome.account.status == "pending_review":
                status = 202 if outcome.created else 200
            else:
                status = 201 if outcome.created else 200
        else:
            outcome = bank_accounts.open_account(
                context.uow_factory(),
                artisan_id,
                bank_accounts.OpenAccount(bank=body["bank"], make_default=body["make_default"]),
                principal,
                settings,
            )
            status = (202 if outcome.account.status == "pending" else 201) if outcome.created else 200
        location = f"/v1/artisans/{artisan_id}/bank-accounts/{outcome.account.id}"
        return outcome.account, status, {"Location": location}

    @require_any_scope("artisans:read", "self:read")
    @blp.response(200, BankAccountListSchema)
    def get(self, artisan_id):
        """The artisan's bank accounts.

        Linked, opened, pending and closed ones, RIBs masked; the default one receives payouts."""
        return {
            "data": bank_accounts.list_accounts(
                service_context().uow_factory(), artisan_id, current_principal()
            )
        }


@blp.route("/artisans/<string:artisan_id>/bank-accounts/<string:bank_account_id>")
class BankAccountById(MethodView):
    @require_any_scope("artisans:read", "self:read")
    @blp.response(200, BankAccountSchema)
    def get(self, artisan_id, bank_account_id):
        """One bank account.

        Its bank, masked RIB and IBAN, status (``pending``, ``pending_review``, ``linked``,
        ``opened``, ``rejected``, ``closed``) and whether it is the default."""
        return bank_accounts.get_account(
            service_context().uow_factory(), artisan_id, bank_account_id, current_principal()
        )


@blp.route("/artisans/<string:artisan_id>/bank-accounts/<string:bank_account_id>/default")
class DefaultBankAccount(MethodView):
    @require_any_scope("artisans:write", "self:write")
    @blp.response(200, BankAccountSchema)
    @problems(codes.BANK_ACCOUNT_NOT_USABLE)
    def post(self, artisan_id, bank_account_id):
        """Make this account the one payouts go to.

        Only a linked or opened account (``bank_account_not_usable`` otherwise); the previous
        default stops receiving payouts."""
        return bank_accounts.make_default(
            service_context().uow_factory(), artisan_id, bank_account_id, current_principal()
        )


@blp.route("/banks/<string:bank>/callbacks")
class BankCallbacks(MethodView):
    @blp.response(200, CallbackAckSchema)
    @blp.doc(security=[])
    @problems(INVALID_SIGNATURE)
    def post(self, bank):
        """A partner bank's asynchronous answer to an account opening.

        Signed by the bank: ``Bank-Signature: t=…,v1=HMAC-SHA256(secret, t.body)``, verified against
        the raw body before it is read. Duplicates and late deliveries change nothing."""
        context = service_context()
        return bank_accounts.handle_callback(
            context.uow_factory(),
            bank,
            request.headers,
            request.get_data(),
            context.bank_accounts,
        )
