"""The problem codes only onboarding answers (the shared ones are in ``shared.problem_codes``)."""

from __future__ import annotations

from shared.problem_codes import problem_code

SERVICE = ("onboarding",)


# --- access tokens ---------------------------------------------------------------------------------

INVALID_SCOPE = problem_code(
    "invalid_scope",
    400,
    "The token request asks for a scope the client's role may not hold.",
    "Ask for a subset of your client's scopes, or leave `scope` out to get them all.",
    services=SERVICE,
)
INVALID_AUDIENCE = problem_code(
    "invalid_audience",
    400,
    "The token request names an audience that is not a Hirfa service.",
    "Ask for `hirfa-onboarding`, `hirfa-payments` or `hirfa-accounts`, or leave `audience` out.",
    services=SERVICE,
)

# --- registering artisans -----------------------------------------------------------------------------

DUPLICATE_IDENTITY = problem_code(
    "duplicate_identity",
    409,
    "Another artisan already holds this CIN or phone number.",
    "Look the artisan up instead of registering them again; one person is one artisan.",
    services=SERVICE,
)
INVALID_PHONE = problem_code(
    "invalid_phone",
    422,
    "The phone is not a Moroccan mobile number (06/07, in any usual notation).",
    "Send the artisan's mobile number, e.g. +212612345678.",
    services=SERVICE,
)
INVALID_CIN = problem_code(
    "invalid_cin",
    422,
    "The CIN is not in the national identity card's format (one or two letters then digits).",
    "Send the CIN as printed on the card.",
    services=SERVICE,
)
INVALID_DATE_OF_BIRTH = problem_code(
    "invalid_date_of_birth",
    422,
    "The date of birth is in the future.",
    "Send the date of birth as on the identity card.",
    services=SERVICE,
)
UNDERAGE = problem_code(
    "underage",
    422,
    "The artisan is younger than the minimum age to hold a payment account.",
    "An artisan under age cannot be registered.",
    services=SERVICE,
)
INVALID_FULL_NAME = problem_code(
    "invalid_full_name",
    422,
    "The name is not written in Latin or Arabic letters, or has fewer than two letters.",
    "Send the name as on the identity card.",
    services=SERVICE,
)
INVALID_ICE = problem_code(
    "invalid_ice",
    422,
    "The cooperative's ICE is not 15 digits.",
    "Send the ICE as registered, or leave it out.",
    services=SERVICE,
)

# --- phone verification and KYC ------------------------------------------------------------------------

PHONE_ALREADY_VERIFIED = problem_code(
    "phone_already_verified",
    409,
    "The artisan's phone is verified already.",
    "Nothing to do: the artisan is at tier 1 or above.",
    services=SERVICE,
)
NO_PENDING_VERIFICATION = problem_code(
    "no_pending_verification",
    409,
    "No code is waiting to be confirmed.",
    "Request a code first (`POST …/phone-verification`).",
    services=SERVICE,
)
OTP_SEND_LIMIT = problem_code(
    "otp_send_limit",
    429,
    "As many codes were sent to this number in the last hour as may be.",
    "Wait for `Retry-After` seconds before asking for another code.",
    services=SERVICE,
)
OTP_ATTEMPTS_EXCEEDED = problem_code(
    "otp_attempts_exceeded",
    429,
    "Too many wrong codes were tried: this code no longer works.",
    "Request a new code.",
    services=SERVICE,
)
OTP_EXPIRED = problem_code(
    "otp_expired",
    422,
    "The one-time code has expired.",
    "Request a new code.",
    services=SERVICE,
)
OTP_INCORRECT = problem_code(
    "otp_incorrect",
    422,
    "The one-time code is not the one sent (`attempts_remaining` may say how many tries are left).",
    "Check the SMS and try again.",
    services=SERVICE,
)
SMS_UNAVAILABLE = problem_code(
    "sms_unavailable",
    503,
    "The SMS provider did not take the message; no code was sent.",
    "Retry in a moment.",
    services=SERVICE,
)
INVALID_DOCUMENT_KIND = problem_code(
    "invalid_document_kind",
    422,
    "The document's kind is not one KYC takes.",
    "Send one of the kinds the operation lists.",
    services=SERVICE,
)
EMPTY_DOCUMENT = problem_code(
    "empty_document", 422, "The uploaded file is empty.", "Upload the document's file.", services=SERVICE
)
DOCUMENT_TOO_LARGE = problem_code(
    "document_too_large",
    422,
    "The uploaded file is larger than a KYC document may be.",
    "Upload a smaller scan or photo (JPEG, PNG or PDF).",
    services=SERVICE,
)
UNSUPPORTED_DOCUMENT_TYPE = problem_code(
    "unsupported_document_type",
    422,
    "The file is not a JPEG, PNG or PDF (judged by its content, not its name).",
    "Upload a JPEG, PNG or PDF.",
    services=SERVICE,
)
DOCUMENT_UNREADABLE = problem_code(
    "document_unreadable",
    500,
    "A stored document could not be decrypted (its key is not available).",
    "Contact support quoting the `request_id`.",
    services=SERVICE,
)
ARTISAN_REJECTED = problem_code(
    "artisan_rejected",
    409,
    "The artisan's KYC was rejected: nothing more can be done for them.",
    "A rejected artisan stays rejected; compliance may explain why.",
    services=SERVICE,
)
REVIEW_ALREADY_DECIDED = problem_code(
    "review_already_decided",
    409,
    "The KYC review has been decided already.",
    "Read the review: its decision stands.",
    services=SERVICE,
)
FOUR_EYES_VIOLATION = problem_code(
    "four_eyes_violation",
    403,
    "The reviewer is the person who submitted what is reviewed.",
    "Another compliance officer decides.",
    services=SERVICE,
)
TIER_PREREQUISITE_UNMET = problem_code(
    "tier_prerequisite_unmet",
    409,
    "The tier asked for needs the artisan at the tier below it first.",
    "Complete the earlier tier (phone, then documents) first.",
    services=SERVICE,
)
SCREENING_LIST_UNAVAILABLE = problem_code(
    "screening_list_unavailable",
    409,
    "No sanctions list is loaded, so the artisan cannot be screened.",
    "An operator loads the list (`hirfa onboarding screening-list …`); then retry.",
    services=SERVICE,
)

# --- bank accounts -------------------------------------------------------------------------------------

KYC_TIER_TOO_LOW = problem_code(
    "kyc_tier_too_low",
    409,
    "Linking or opening a bank account needs a higher KYC tier than the artisan has.",
    "Have the artisan reach the tier `detail` names first.",
    services=SERVICE,
)
HOLDER_NAME_MISMATCH = problem_code(
    "holder_name_mismatch",
    422,
    "The account holder's name does not match the artisan's name.",
    "Send the holder's name as the bank has it; an account must be the artisan's own.",
    services=SERVICE,
)
ACCOUNT_HOLDER_MISMATCH = problem_code(
    "account_holder_mismatch",
    422,
    "The bank says this account is not held by this person.",
    "Link an account the artisan holds.",
    services=SERVICE,
)
BANK_VERIFICATION_UNAVAILABLE = problem_code(
    "bank_verification_unavailable",
    503,
    "The bank could not be asked who holds the account; nothing was linked.",
    "Retry later.",
    services=SERVICE,
)
BANK_ACCOUNT_IN_USE = problem_code(
    "bank_account_in_use",
    409,
    "Another request linked this account at the same moment.",
    "Retry: the account is then claimed for review.",
    services=SERVICE,
)
BANK_ACCOUNT_CLAIM_STALE = problem_code(
    "bank_account_claim_stale",
    409,
    "The claimed account changed hands since the claim was made.",
    "Reject the claim; the claimant may link the account again.",
    services=SERVICE,
)
BANK_ACCOUNT_NOT_USABLE = problem_code(
    "bank_account_not_usable",
    409,
    "Only a linked or opened account can receive payouts.",
    "Choose an account whose status is linked or opened.",
    services=SERVICE,
)
UNKNOWN_PARTNER_BANK = problem_code(
    "unknown_partner_bank",
    422,
    "Accounts cannot be opened at this bank through Hirfa.",
    "Choose one of the partner banks `detail` lists.",
    services=SERVICE,
)

# --- signing in: artisans and staff ---------------------------------------------------------------------

SIGN_IN_NOT_PENDING = problem_code(
    "sign_in_not_pending",
    409,
    "The sign-in is over: used, replaced by a newer code, or never sent.",
    "Start a new sign-in.",
    services=SERVICE,
)
SIGN_IN_LOCKED = problem_code(
    "sign_in_locked",
    429,
    "Too many wrong codes or passwords: signing in is locked for a while.",
    "Wait for `Retry-After` seconds.",
    services=SERVICE,
)
SIGN_IN_IP_LIMIT = problem_code(
    "sign_in_ip_limit",
    429,
    "Too many sign-ins were started from this network.",
    "Wait for `Retry-After` seconds.",
    services=SERVICE,
)
INVALID_REFRESH_TOKEN = problem_code(
    "invalid_refresh_token",
    401,
    "The refresh token is not one Hirfa issued, or not for this device.",
    "Sign in again.",
    services=SERVICE,
)
REFRESH_TOKEN_EXPIRED = problem_code(
    "refresh_token_expired", 401, "The refresh token has expired.", "Sign in again.", services=SERVICE
)
REFRESH_TOKEN_REVOKED = problem_code(
    "refresh_token_revoked",
    401,
    "The session was ended (signed out, the device revoked, or the account disabled).",
    "Sign in again.",
    services=SERVICE,
)
REFRESH_TOKEN_REUSED = problem_code(
    "refresh_token_reused",
    401,
    "A refresh token was used twice: every session of its family is ended, in case it was stolen.",
    "Sign in again; keep only the latest refresh token.",
    services=SERVICE,
)
INVALID_CREDENTIALS = problem_code(
    "invalid_credentials",
    401,
    "Wrong email, password or authenticator code (which one is not said).",
    "Check them and try again; repeated failures lock the account for a while.",
    services=SERVICE,
)
TOTP_ENROLMENT_REQUIRED = problem_code(
    "totp_enrolment_required",
    403,
    "The staff member has no second factor yet.",
    "Enrol an authenticator with the enrolment token first (`POST /v1/staff-enrolments`).",
    services=SERVICE,
)
INVALID_ENROLMENT_TOKEN = problem_code(
    "invalid_enrolment_token",
    401,
    "The enrolment token is unknown, used or expired.",
    "Ask an administrator for a new enrolment token.",
    services=SERVICE,
)
ENROLMENT_NOT_STARTED = problem_code(
    "enrolment_not_started",
    409,
    "Confirming an enrolment that was not started.",
    "Start it first (`POST /v1/staff-enrolments`).",
    services=SERVICE,
)
TOTP_CODE_INCORRECT = problem_code(
    "totp_code_incorrect",
    422,
    "The authenticator's code does not match.",
    "Check the authenticator's clock and try the next code.",
    services=SERVICE,
)
STAFF_DISABLED = problem_code(
    "staff_disabled",
    409,
    "The staff member is disabled.",
    "An administrator enables them again.",
    services=SERVICE,
)
STAFF_EMAIL_TAKEN = problem_code(
    "staff_email_taken",
    409,
    "A staff member already has this email.",
    "Use another address, or re-enrol the existing member.",
    services=SERVICE,
)
INVALID_EMAIL = problem_code(
    "invalid_email", 422, "The email is not an email address.", "Send a valid address.", services=SERVICE
)
INVALID_ROLE = problem_code(
    "invalid_role",
    422,
    "A staff member's role is not one staff may hold (compliance, operator).",
    "Give compliance, operator or both.",
    services=SERVICE,
)
PASSWORD_TOO_SHORT = problem_code(
    "password_too_short", 422, "The password is too short.", "Choose a longer password.", services=SERVICE
)
PASSWORD_TOO_LONG = problem_code(
    "password_too_long", 422, "The password is too long.", "Choose a shorter password.", services=SERVICE
)

# --- notifications --------------------------------------------------------------------------------------

SMS_MESSAGE_UNKNOWN = problem_code(
    "sms_message_unknown",
    503,
    "A delivery receipt names a message not recorded yet (the receipt came before the send was saved).",
    "Send the receipt again later.",
    services=SERVICE,
)

# --- personal data (law 09-08) -----------------------------------------------------------------------

PERSONAL_DATA_UNAVAILABLE = problem_code(
    "personal_data_unavailable",
    503,
    "Payments or accounts (named in `service`) could not give its part of the artisan's data in time. "
    "Nothing was exported: an archive is never partial.",
    "Ask again after `Retry-After` seconds.",
    services=SERVICE,
)
DOCUMENT_SHREDDED = problem_code(
    "document_shredded",
    410,
    "The document was crypto-shredded when its artisan's personal data was erased: nothing can decrypt it.",
    "None: the document no longer exists.",
    services=SERVICE,
)
