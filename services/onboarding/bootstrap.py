"""Onboarding's composition root: ``bootstrap`` builds every adapter from the configuration, once.

The web app, the worker and every command start here; tests pass their fakes as keyword arguments.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
from pathlib import Path

from services.onboarding.adapters.banks import HttpBankPartner
from services.onboarding.adapters.orm import BrokerTopic, IdempotencyKey, InboxMessage, OutboxMessage
from services.onboarding.adapters.screening_lists import ListSource
from services.onboarding.adapters.service_apis import HttpPersonalDataSource
from services.onboarding.adapters.sms import make_sms_sender
from services.onboarding.config import OnboardingConfig, load_config
from services.onboarding.context import OnboardingContext
from services.onboarding.domain.artisan_sessions import LockoutPolicy
from services.onboarding.domain.ports import BankPartners, PersonalDataSource, SmsGateway
from services.onboarding.service_layer.artisan_sessions import SignInPolicy
from services.onboarding.service_layer.artisans import TierPolicy
from services.onboarding.service_layer.bank_accounts import BankAccountSettings
from services.onboarding.service_layer.notifications import NotificationSettings
from services.onboarding.service_layer.phone import OtpPolicy
from services.onboarding.service_layer.screening import ScreeningIndexCache, ScreeningSources
from services.onboarding.service_layer.staff import StaffPolicy
from shared.auth.keys import SigningKeyStore
from shared.auth.tokens import TokenIssuer, TokenVerifier
from shared.context import Models, build_context
from shared.crypto import EnvelopeCipher, MasterKeyRing
from shared.partner_ports import PartnerRegistry

MODELS = Models(
    outbox=OutboxMessage, inbox=InboxMessage, idempotency_key=IdempotencyKey, broker_topic=BrokerTopic
)


def bootstrap(
    config: OnboardingConfig | None = None,
    *,
    bank_partners: BankPartners | None = None,
    sms: SmsGateway | None = None,
    personal_data_sources: tuple[PersonalDataSource, ...] | None = None,
) -> OnboardingContext:
    config = config or load_config()
    keys = SigningKeyStore(config.keys_dir)
    # Onboarding is the issuer: it verifies its own tokens against its key files, no HTTP.
    verifier = TokenVerifier(
        lambda kid: keys.public_keys().get(kid), issuer=config.token_issuer, audience=config.audience
    )
    tiers = TierPolicy(config.tier_caps)
    otp = _otp_policy(config)
    cipher = _document_cipher(config)
    return build_context(
        config,
        MODELS,
        token_verifier=verifier,
        context_type=OnboardingContext,
        signing_keys=keys,
        token_issuer=TokenIssuer(keys, config.token_issuer, config.token_ttl_seconds),
        tiers=tiers,
        otp=otp,
        sign_in=_sign_in_policy(config, keys, otp),
        sms=sms or make_sms_sender(config),
        cipher=cipher,
        staff=_staff_policy(config, keys, cipher),
        screening=ScreeningIndexCache(),
        bank_accounts=BankAccountSettings(
            partners=bank_partners or _bank_partners(config),
            partner_banks=config.partner_bank_slugs,
            holder_name_threshold=config.holder_name_threshold,
            callback_base_url=config.public_url,
        ),
        notifications=NotificationSettings(
            max_attempts=config.notification_max_attempts,
            retry_seconds=config.notification_retry_seconds,
            max_backoff_seconds=config.notification_max_backoff_seconds,
        ),
        personal_data_sources=(
            personal_data_sources
            if personal_data_sources is not None
            else _personal_data_sources(config, keys)
        ),
    )


# A token onboarding mints itself to read another service's part of an export: one read's worth.
SERVICE_TOKEN_TTL_SECONDS = 60


def _personal_data_sources(config: OnboardingConfig, keys: SigningKeyStore) -> tuple[PersonalDataSource, ...]:
    issuer = TokenIssuer(keys, config.token_issuer, SERVICE_TOKEN_TTL_SECONDS)
    return tuple(
        HttpPersonalDataSource(
            name=name, base_url=url, issuer=issuer, timeout=config.personal_data_timeout_seconds
        )
        for name, url in (("payments", config.payments_url), ("accounts", config.accounts_url))
    )


def _sign_in_policy(config: OnboardingConfig, keys: SigningKeyStore, otp: OtpPolicy) -> SignInPolicy:
    return SignInPolicy(
        otp=otp,
        issuer=TokenIssuer(keys, config.token_issuer, config.artisan_token_ttl_seconds),
        lockout=LockoutPolicy(
            max_failed_codes=config.sign_in_max_failed_codes,
            window=dt.timedelta(seconds=config.sign_in_failure_window_seconds),
            lockout=dt.timedelta(seconds=config.sign_in_lockout_seconds),
        ),
        refresh_ttl=dt.timedelta(days=config.refresh_token_ttl_days),
        retry_grace=dt.timedelta(seconds=config.refresh_token_retry_grace_seconds),
        max_starts_per_ip_per_hour=config.sign_in_max_starts_per_ip_per_hour,
        min_response=dt.timedelta(milliseconds=config.sign_in_min_response_ms),
    )


def _staff_policy(config: OnboardingConfig, keys: SigningKeyStore, cipher: EnvelopeCipher) -> StaffPolicy:
    # TOTP secrets are sealed with the document master keys: one key ring to guard and rotate.
    return StaffPolicy(
        issuer=TokenIssuer(keys, config.token_issuer, config.staff_token_ttl_seconds),
        cipher=cipher,
        lockout=LockoutPolicy(
            max_failed_codes=config.staff_max_failed_sign_ins,
            window=dt.timedelta(seconds=config.staff_failure_window_seconds),
            lockout=dt.timedelta(seconds=config.staff_lockout_seconds),
        ),
        enrolment_ttl=dt.timedelta(hours=config.staff_enrolment_ttl_hours),
        refresh_idle=dt.timedelta(seconds=config.staff_refresh_idle_seconds),
        session_max=dt.timedelta(hours=config.staff_session_max_hours),
        retry_grace=dt.timedelta(seconds=config.refresh_token_retry_grace_seconds),
    )


def _otp_policy(config: OnboardingConfig) -> OtpPolicy:
    if config.is_production and not config.otp_secret:
        # Only a process that never checks a code starts without the secret (OnboardingConfig.validate).
        return config.withheld("otp_secret")
    return OtpPolicy(
        secret=_otp_secret(config),
        ttl_seconds=config.otp_ttl_seconds,
        max_attempts=config.otp_max_attempts,
        max_sends_per_hour=config.otp_max_sends_per_hour,
    )


def _otp_secret(config: OnboardingConfig) -> bytes:
    if config.otp_secret:
        return config.otp_secret.encode()
    # Development: a generated key kept beside the signing keys (production refuses to start
    # without OTP_SECRET, see OnboardingConfig.validate).
    path = Path(config.keys_dir) / "otp-hmac.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written aside then hard-linked into place: a concurrent reader never sees a half file,
        # and when two processes race, the first link wins and both read the same key.
        temporary = path.with_suffix(f".{secrets.token_hex(4)}.tmp")
        temporary.write_text(secrets.token_hex(32))
        temporary.chmod(0o600)
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass
        finally:
            temporary.unlink()
    return path.read_text().strip().encode()


def _document_cipher(config: OnboardingConfig) -> EnvelopeCipher:
    if config.is_production and not config.document_master_keys:
        # Only a process that never opens a document or a TOTP secret starts without the keys.
        return config.withheld("document_master_keys")
    return EnvelopeCipher(_document_keyring(config))


def _document_keyring(config: OnboardingConfig) -> MasterKeyRing:
    if config.document_master_keys:
        return MasterKeyRing.from_spec(config.document_master_keys)
    keyring = MasterKeyRing(config.documents_keys_dir)
    keyring.ensure_key()
    return keyring


def _bank_partners(config: OnboardingConfig) -> PartnerRegistry[HttpBankPartner]:
    # Every partner bank is reached through the same bank-partner API here; a bank with its own API
    # gets its own adapter in this registry.
    adapter = HttpBankPartner.from_config(config)
    return PartnerRegistry({slug: adapter for slug in config.partner_bank_slugs})


def screening_sources(config: OnboardingConfig, *, sanctions_location: str | None = None) -> ScreeningSources:
    """The configured sanctions list and, when one is set, the PEP list (``sanctions_location``
    replaces the configured sanctions source for one load)."""

    def source(kind: str, prefix: str, location: str, max_age_hours: int) -> ListSource:
        return ListSource(
            kind=kind,
            location=location,
            max_age=dt.timedelta(hours=max_age_hours) if max_age_hours > 0 else None,
            setting=config.setting_name(f"{prefix}_list_source"),
            max_age_setting=config.setting_name(f"{prefix}_list_max_age_hours"),
        )

    lists = [
        source(
            "sanctions",
            "sanctions",
            sanctions_location or config.sanctions_list_source,
            config.sanctions_list_max_age_hours,
        )
    ]
    if config.pep_list_source:
        lists.append(source("PEP", "pep", config.pep_list_source, config.pep_list_max_age_hours))
    return ScreeningSources(lists=tuple(lists), timeout_seconds=config.screening_list_timeout_seconds)
