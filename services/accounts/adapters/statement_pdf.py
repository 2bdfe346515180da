"""The income statement as a PDF, in French or Arabic (fpdf2).

Arabic is shaped by HarfBuzz (fpdf2's text shaping, through uharfbuzz: joined letter forms,
lam-alef ligatures) and laid out right to left by fpdf2's Unicode bidirectional algorithm; the
page itself is mirrored (labels on the right, the table's first column on the right). Amounts and
dates are CLDR's for the locale, through Babel: ``1 234,50 MAD`` in French (fr_MA), ``1.234,50 د.م.``
in Arabic (ar_MA, Latin digits as in Morocco).

One font covers both scripts: DejaVu Sans (services/accounts/fonts, with its licence), shipped
with the code so the PDF looks the same on every machine.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from babel.dates import format_date
from fpdf import FPDF

from shared.i18n import CLDR_LOCALES, format_money

FONT_PATH = Path(__file__).resolve().parent.parent / "fonts" / "DejaVuSans.ttf"
LANGUAGES = ("fr", "ar")

# The statement's words, per language (the figures come from the signed statement).
LABELS: dict[str, dict[str, str]] = {
    "fr": {
        "title": "Relevé de revenus certifié",
        "subtitle": "Établi par Hirfa à partir de son grand livre comptable, signé électroniquement.",
        "artisan": "Artisan",
        "period": "Période",
        "issued": "Émis le",
        "kyc_tier": "Niveau KYC",
        "unknown": "inconnu",
        "months_active": "Mois avec des ventes",
        "payments": "Nombre de ventes (paiements)",
        "marketplaces": "Places de marché",
        "month": "Mois",
        "gross_sales": "Ventes brutes",
        "refunds": "Remboursements",
        "marketplace_fees": "Commissions",
        "net_income": "Revenu net",
        "payouts": "Virements",
        "total": "Total",
        "disputes": "Litiges (montants retenus)",
        "opening": "Solde au début de la période",
        "closing": "Solde à la fin de la période",
        "buyers_note": "Le grand livre ne connaît pas les acheteurs : chaque paiement est compté comme une vente.",
        "net_note": "Revenu net : ventes moins commissions, remboursements et litiges, tel que crédité à l'artisan.",
        "verify_title": "Vérifier ce relevé",
        "code": "Code de vérification",
        "fetch": "Relevé signé (JWS)",
        "verify": "Vérification",
        "key": "Clé de signature",
    },
    "ar": {
        "title": "كشف الدخل المصادق عليه",
        "subtitle": "صادر عن حرفة انطلاقا من دفترها المحاسبي، وموقع إلكترونيا.",
        "artisan": "الحرفي",
        "period": "الفترة",
        "issued": "تاريخ الإصدار",
        "kyc_tier": "مستوى التحقق من الهوية",
        "unknown": "غير معروف",
        "months_active": "أشهر تمت فيها مبيعات",
        "payments": "عدد المبيعات (عمليات الدفع)",
        "marketplaces": "المتاجر الإلكترونية",
        "month": "الشهر",
        "gross_sales": "المبيعات الإجمالية",
        "refunds": "المبالغ المستردة",
        "marketplace_fees": "العمولات",
        "net_income": "صافي الدخل",
        "payouts": "التحويلات",
        "total": "المجموع",
        "disputes": "النزاعات (المبالغ المحتجزة)",
        "opening": "الرصيد في بداية الفترة",
        "closing": "الرصيد في نهاية الفترة",
        "buyers_note": "لا يعرف الدفتر المحاسبي هوية المشترين: تحتسب كل عملية دفع عملية بيع واحدة.",
        "net_note": "صافي الدخل: المبيعات ناقص العمولات والمبالغ المستردة والنزاعات، كما قيد لفائدة الحرفي.",
        "verify_title": "التحقق من هذا الكشف",
        "code": "رمز التحقق",
        "fetch": "الكشف الموقع (JWS)",
        "verify": "التحقق",
        "key": "مفتاح التوقيع",
    },
}

COLUMNS = ("gross_sales", "refunds", "marketplace_fees", "net_income", "payouts")
_MONTH_WIDTH = 30.0
_AMOUNT_WIDTH = 32.0
_ROW_HEIGHT = 7.0


def format_amount(money: Mapping[str, Any], language: str) -> str:
    """``{"amount": 123450, "currency": "MAD"}`` as people of ``language`` write it (CLDR, as in
    every message: ``shared.i18n.format_money``)."""
    return format_money(int(money["amount"]), str(money["currency"]), language)


def format_month(month: str, language: str) -> str:
    year, number = month.split("-")
    return format_date(dt.date(int(year), int(number), 1), "MMMM y", locale=CLDR_LOCALES[language])


class FpdfStatementRenderer:
    def __init__(self, font_path: Path = FONT_PATH) -> None:
        self.font_path = font_path

    def render(
        self, statement: Mapping[str, Any], *, language: str, verification_url: str, kid: str
    ) -> bytes:
        if language not in LANGUAGES:
            raise ValueError(f"no PDF layout for language {language!r}")
        page = _Page(self.font_path, language)
        page.write(statement, verification_url, kid)
        return bytes(page.pdf.output())


class _Page:
    def __init__(self, font_path: Path, language: str) -> None:
        self.language = language
        self.rtl = language == "ar"
        self.words = LABELS[language]
        pdf = FPDF(format="A4")
        pdf.set_margins(10, 12, 10)
        pdf.set_auto_page_break(True, margin=14)
        pdf.add_font("body", fname=str(font_path))
        pdf.set_text_shaping(
            use_shaping_engine=True,
            direction="rtl" if self.rtl else "ltr",
            script="arab" if self.rtl else "latn",
            language="ara" if self.rtl else "fra",
        )
        pdf.set_lang(language)
        pdf.set_title(self.words["title"])
        pdf.set_creator("Hirfa")
        pdf.add_page()
        self.pdf = pdf

    # --- helpers ----------------------------------------------------------------------------------

    @property
    def start(self) -> str:
        return "R" if self.rtl else "L"

    @property
    def end(self) -> str:
        return "L" if self.rtl else "R"

    def line(self, text: str, *, size: float = 10, height: float = 6, align: str | None = None) -> None:
        self.pdf.set_font("body", size=size)
        self.pdf.multi_cell(0, height, text, align=align or self.start, new_x="LMARGIN", new_y="NEXT")

    def field(self, label: str, value: str) -> None:
        self.line(f"{label} : {value}" if not self.rtl else f"{label}: {value}")

    def row(self, cells: Sequence[str], *, size: float = 8.5, fill: bool = False) -> None:
        pdf = self.pdf
        pdf.set_font("body", size=size)
        if pdf.will_page_break(_ROW_HEIGHT):
            pdf.add_page()
        widths = [_MONTH_WIDTH, *[_AMOUNT_WIDTH] * (len(cells) - 1)]
        aligns = [self.start, *[self.end] * (len(cells) - 1)]
        laid = list(zip(cells, widths, aligns, strict=True))
        # Right to left, the first column (the month) is the rightmost.
        for text, width, align in reversed(laid) if self.rtl else laid:
            pdf.cell(width, _ROW_HEIGHT, text, border=1, align=align, fill=fill, new_x="RIGHT", new_y="TOP")
        pdf.ln(_ROW_HEIGHT)

    def amount(self, money: Mapping[str, Any]) -> str:
        return format_amount(money, self.language)

    # --- the page ---------------------------------------------------------------------------------

    def write(self, statement: Mapping[str, Any], verification_url: str, kid: str) -> None:
        words = self.words
        period = statement["period"]
        self.line(words["title"], size=17, height=9)
        self.pdf.set_text_color(90, 90, 90)
        self.line(words["subtitle"], size=9)
        self.pdf.set_text_color(0, 0, 0)
        self.pdf.ln(3)

        issued = dt.datetime.fromisoformat(str(statement["issued_at"]))
        tier = statement["kyc"]["tier"]
        self.field(words["artisan"], str(statement["artisan_id"]))
        self.field(
            words["period"],
            f"{format_month(period['from'], self.language)} – {format_month(period['to'], self.language)}",
        )
        self.field(words["issued"], format_date(issued.date(), "long", locale=CLDR_LOCALES[self.language]))
        self.field(words["kyc_tier"], words["unknown"] if tier is None else str(tier))
        self.field(words["months_active"], f"{statement['months_active']} / {len(statement['months'])}")
        self.field(words["payments"], str(statement["payments_count"]))
        marketplaces = statement["marketplaces"]
        self.field(
            words["marketplaces"], f"{len(marketplaces)} ({', '.join(marketplaces)})" if marketplaces else "0"
        )
        self.pdf.ln(3)

        self.pdf.set_fill_color(235, 235, 235)
        self.row([words["month"], *(words[column] for column in COLUMNS)], fill=True)
        for month in statement["months"]:
            self.row([format_month(month["month"], self.language), *(self.amount(month[c]) for c in COLUMNS)])
        totals = statement["totals"]
        self.row([words["total"], *(self.amount(totals[c]) for c in COLUMNS)], fill=True)
        self.pdf.ln(3)

        self.field(words["disputes"], self.amount(totals["disputes"]))
        self.field(words["opening"], self.amount(statement["balance"]["opening"]))
        self.field(words["closing"], self.amount(statement["balance"]["closing"]))
        self.pdf.set_text_color(90, 90, 90)
        self.line(words["net_note"], size=8, height=5)
        self.line(words["buyers_note"], size=8, height=5)
        self.pdf.set_text_color(0, 0, 0)
        self.pdf.ln(4)

        verification = statement["verification"]
        self.line(words["verify_title"], size=12, height=8)
        self.field(words["code"], str(verification["code"]))
        self.field(words["fetch"], str(verification["statement_url"]))
        self.field(words["verify"], verification_url)
        self.field(words["key"], kid)
