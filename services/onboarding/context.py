"""Onboarding's wired parts, as ``bootstrap()`` builds them once for the web app, workers and commands."""

from __future__ import annotations

import dataclasses

from services.onboarding.config import OnboardingConfig
from services.onboarding.domain.ports import PersonalDataSource, SmsGateway
from services.onboarding.service_layer.artisan_sessions import SignInPolicy
from services.onboarding.service_layer.artisans import TierPolicy
from services.onboarding.service_layer.bank_accounts import BankAccountSettings
from services.onboarding.service_layer.notifications import NotificationSettings
from services.onboarding.service_layer.phone import OtpPolicy
from services.onboarding.service_layer.screening import ScreeningIndexCache
from services.onboarding.service_layer.staff import StaffPolicy
from shared.auth.keys import SigningKeyStore
from shared.auth.tokens import TokenIssuer
from shared.context import ServiceContext
from shared.crypto import EnvelopeCipher


@dataclasses.dataclass(kw_only=True)
class OnboardingContext(ServiceContext):
    """Everything onboarding's requests and commands need besides the database: the token issuer
    and its keys, the KYC policies, the SMS carrier, the document cipher, the screening index and
    the partner banks; and how staff sign in."""

    config: OnboardingConfig
    signing_keys: SigningKeyStore
    token_issuer: TokenIssuer
    tiers: TierPolicy
    otp: OtpPolicy
    sign_in: SignInPolicy
    sms: SmsGateway
    cipher: EnvelopeCipher
    staff: StaffPolicy
    screening: ScreeningIndexCache
    bank_accounts: BankAccountSettings
    notifications: NotificationSettings
    # The other services holding part of an artisan's personal data (payments, accounts).
    personal_data_sources: tuple[PersonalDataSource, ...]
