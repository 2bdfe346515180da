"""Morocco's twelve regions (the 2015 division), by the codes the APIs use: onboarding records an
artisan's region with one of them, and the back-office console filters its review queue by them."""

from __future__ import annotations

REGIONS = (
    "tanger_tetouan_al_hoceima",
    "oriental",
    "fes_meknes",
    "rabat_sale_kenitra",
    "beni_mellal_khenifra",
    "casablanca_settat",
    "marrakech_safi",
    "draa_tafilalet",
    "souss_massa",
    "guelmim_oued_noun",
    "laayoune_sakia_el_hamra",
    "dakhla_oued_ed_dahab",
)
