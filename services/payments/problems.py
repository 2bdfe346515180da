"""The problem codes only payments answers (the shared ones are in ``shared.problem_codes``)."""

from __future__ import annotations

from shared.problem_codes import problem_code

SERVICE = ("payments",)

PAYMENT_NOT_FOUND = problem_code(
    "payment_not_found",
    404,
    "No payment of your marketplace has this id (`param` names the field that carried it).",
    "Check the id; `GET /v1/payments` lists your payments.",
    services=SERVICE,
)
REFUND_NOT_FOUND = problem_code(
    "refund_not_found",
    404,
    "No refund of your marketplace has this id.",
    "Check the id; `GET /v1/refunds` lists your refunds.",
    services=SERVICE,
)
DISPUTE_NOT_FOUND = problem_code(
    "dispute_not_found",
    404,
    "No dispute on your marketplace's payments has this id.",
    "Check the id; `GET /v1/disputes` lists them.",
    services=SERVICE,
)
UNKNOWN_GATEWAY = problem_code(
    "unknown_gateway",
    404,
    "No payment gateway of this name is configured.",
    "Send callbacks to the path of a configured gateway (`/v1/gateways/m2t/callbacks`, say).",
    services=SERVICE,
)
PAYEE_UNKNOWN = problem_code(
    "payee_unknown",
    422,
    "No artisan with this id is registered with your marketplace, or payments has not heard of them yet.",
    "Register the artisan with onboarding first; just after registering, retry in a few seconds.",
    services=SERVICE,
)
PAYEE_NOT_ELIGIBLE = problem_code(
    "payee_not_eligible",
    409,
    "The artisan cannot be paid: their KYC tier is 0 or their KYC was rejected. Nothing was charged.",
    "Have the artisan verify their phone (tier 1) first; a rejected artisan cannot be paid.",
    services=SERVICE,
)
PAYEE_RESTRICTED = problem_code(
    "payee_restricted",
    409,
    "The artisan asked for their personal data to be erased: until it is, they are no longer paid. "
    "Nothing was charged.",
    "Do not take payments for this artisan any more.",
    services=SERVICE,
)
TIER_LIMIT_EXCEEDED = problem_code(
    "tier_limit_exceeded",
    409,
    "The payment would take the artisan above the cap of their KYC tier (200, 5,000 or 20,000 MAD). "
    "Nothing was charged.",
    "Take a smaller amount, or have the artisan reach a higher KYC tier.",
    services=SERVICE,
)
AMOUNT_OUT_OF_RANGE = problem_code(
    "amount_out_of_range",
    422,
    "The amount is outside the range a payment may have.",
    "Send an amount (in centimes) within the range `detail` gives.",
    services=SERVICE,
)
APPLICATION_FEE_EXCEEDS_AMOUNT = problem_code(
    "application_fee_exceeds_amount",
    422,
    "The marketplace's application_fee is larger than the payment's amount.",
    "Send an application_fee of at most the amount.",
    services=SERVICE,
)
PAYMENT_METHOD_MISMATCH = problem_code(
    "payment_method_mismatch",
    422,
    "The confirmation does not fit the payment's method: a card payment takes a `card_token` (and "
    "no phone), a mobile-wallet payment the buyer's `phone` (and no card token).",
    "Confirm with the field the payment's method takes.",
    services=SERVICE,
)
INVALID_STATE = problem_code(
    "invalid_state",
    409,
    "The payment is in a state that does not allow this (confirming it twice, capturing one not "
    "authorised, refunding one not succeeded…); `payment_status` says which.",
    "Read the payment and act according to its status.",
    services=SERVICE,
)
AMOUNT_EXCEEDS_AUTHORISED = problem_code(
    "amount_exceeds_authorised",
    422,
    "The amount to capture is not positive or is more than was authorised.",
    "Capture at most the authorised amount (leave amount_to_capture out to capture it all).",
    services=SERVICE,
)
CAPTURE_BELOW_APPLICATION_FEE = problem_code(
    "capture_below_application_fee",
    422,
    "The amount to capture would not cover the marketplace's application_fee.",
    "Capture at least the application_fee.",
    services=SERVICE,
)
CAPTURE_REFUSED = problem_code(
    "capture_refused",
    409,
    "The gateway refused the capture (the authorisation expired or was voided there, say); nothing "
    "was captured. `gateway_code` is the gateway's reason, `payment_status` the payment's status now.",
    "Read the payment: a payment back in requires_capture may be captured again, a canceled one not.",
    services=SERVICE,
)
CANCEL_REFUSED = problem_code(
    "cancel_refused",
    409,
    "The gateway refused to void the payment (the buyer approved meanwhile, say). `gateway_code` is "
    "the gateway's reason, `payment_status` the payment's status now.",
    "Read the payment; once succeeded it is refunded, not canceled.",
    services=SERVICE,
)
GATEWAY_UNAVAILABLE = problem_code(
    "gateway_unavailable",
    503,
    "The gateway did not answer; the payment is unchanged.",
    "Retry the same request later.",
    services=SERVICE,
)
REFUND_EXCEEDS_CAPTURED = problem_code(
    "refund_exceeds_captured",
    409,
    "The refund is more than what is left to refund of the captured amount (or it is all refunded).",
    "Refund at most the captured amount less what was refunded already.",
    services=SERVICE,
)
APPLICATION_FEE_REFUND_TOO_LARGE = problem_code(
    "application_fee_refund_too_large",
    422,
    "application_fee_refunded exceeds the amount refunded or the commission left to refund.",
    "Send a smaller application_fee_refunded.",
    services=SERVICE,
)
CHARGE_DISPUTED = problem_code(
    "charge_disputed",
    409,
    "The payment has an open or lost dispute: the buyer gets the money back through the chargeback. "
    "`dispute_id` and `dispute_status` name it.",
    "Do not refund it; follow the dispute instead.",
    services=SERVICE,
)
UNKNOWN_EVENT_TYPES = problem_code(
    "unknown_event_types",
    422,
    "The endpoint asks for event types that do not exist.",
    "Use the event types the webhook documentation lists, or `*` for all.",
    services=SERVICE,
)
INVALID_WEBHOOK_URL = problem_code(
    "invalid_webhook_url",
    422,
    "The webhook URL is not an absolute http(s) URL with a host, or carries credentials or a fragment.",
    "Send a plain absolute https URL.",
    services=SERVICE,
)
INSECURE_WEBHOOK_URL = problem_code(
    "insecure_webhook_url",
    422,
    "The webhook URL does not use https.",
    "Serve the endpoint over https.",
    services=SERVICE,
)
WEBHOOK_URL_NOT_PUBLIC = problem_code(
    "webhook_url_not_public",
    422,
    "The webhook URL's host is, or resolves to, a private, loopback or otherwise non-public address.",
    "Use a host that resolves to public addresses only.",
    services=SERVICE,
)
TOO_MANY_WEBHOOK_ENDPOINTS = problem_code(
    "too_many_webhook_endpoints",
    409,
    "Your marketplace has as many enabled webhook endpoints as it may.",
    "Delete an endpoint you no longer use first.",
    services=SERVICE,
)
WEBHOOK_ENDPOINT_DISABLED = problem_code(
    "webhook_endpoint_disabled",
    409,
    "The delivery's endpoint was deleted; nothing is sent to it any more.",
    "Register the endpoint again; new events are delivered there.",
    services=SERVICE,
)
WEBHOOK_DELIVERY_IN_PROGRESS = problem_code(
    "webhook_delivery_in_progress",
    409,
    "An attempt of this delivery is being sent right now.",
    "Retry after `Retry-After` seconds, once the attempt is recorded.",
    services=SERVICE,
)
