"""Generate forms/src/lists/countries.csv.

Dev-time only: the CSV is committed and reviewed; migkit never runs this script. Names come from the
ISO 3166-1 list in the `pycountry` package (with its iso-codes gettext catalogues for Russian,
Kazakh, Kyrgyz, Tajik and Uzbek). Install it in the dev environment only: `.venv/bin/pip install
pycountry`. The priority countries of specs/questionnaire.md section 4 item 7 come first, in that
order, with short everyday names written by hand in all six languages; the rest follow in English
alphabetical order. The iso-codes catalogues miss about 100 Uzbek names (and 3 Kyrgyz): those gaps
are filled by hand below (Uzbek in Latin script). Choice `name` is the ISO alpha-3 code, `iso_num`
the ISO numeric code, `nca` = 1 marks the survey countries for `id_country`.
"""

from __future__ import annotations

import csv
import gettext
from pathlib import Path

import pycountry

OUT = Path(__file__).resolve().parent.parent / "src" / "lists" / "countries.csv"
LANGS = ["English (en)", "Russian (ru)", "Kazakh (kk)", "Kyrgyz (ky)", "Tajik (tg)", "Uzbek (uz)"]
CODES = ["ru", "kk", "ky", "tg", "uz"]

# North and Central Asia (ESCAP subregion) plus Mongolia: the countries a survey can run in.
SURVEY_COUNTRIES = {"ARM", "AZE", "GEO", "KAZ", "KGZ", "MNG", "RUS", "TJK", "TKM", "UZB"}

# Priority list (spec section 4 item 7), in order: en, ru, kk, ky, tg, uz.
PRIORITY = {
    "RUS": ("Russia", "Россия", "Ресей", "Россия", "Русия", "Rossiya"),
    "KAZ": ("Kazakhstan", "Казахстан", "Қазақстан", "Казакстан", "Қазоқистон", "Qozogʻiston"),
    "KGZ": ("Kyrgyzstan", "Кыргызстан", "Қырғызстан", "Кыргызстан", "Қирғизистон", "Qirgʻiziston"),
    "TJK": ("Tajikistan", "Таджикистан", "Тәжікстан", "Тажикстан", "Тоҷикистон", "Tojikiston"),
    "UZB": ("Uzbekistan", "Узбекистан", "Өзбекстан", "Өзбекстан", "Ӯзбекистон", "Oʻzbekiston"),
    "TKM": ("Turkmenistan", "Туркменистан", "Түрікменстан", "Түркмөнстан", "Туркманистон", "Turkmaniston"),
    "ARM": ("Armenia", "Армения", "Армения", "Армения", "Арманистон", "Armaniston"),
    "AZE": ("Azerbaijan", "Азербайджан", "Әзірбайжан", "Азербайжан", "Озарбойҷон", "Ozarbayjon"),
    "GEO": ("Georgia", "Грузия", "Грузия", "Грузия", "Гурҷистон", "Gruziya"),
    "MNG": ("Mongolia", "Монголия", "Моңғолия", "Монголия", "Муғулистон", "Moʻgʻuliston"),
    "TUR": ("Türkiye", "Турция", "Түркия", "Түркия", "Туркия", "Turkiya"),
    "KOR": (
        "Republic of Korea (South Korea)",
        "Республика Корея (Южная Корея)",
        "Корея Республикасы (Оңтүстік Корея)",
        "Корея Республикасы (Түштүк Корея)",
        "Ҷумҳурии Корея (Кореяи Ҷанубӣ)",
        "Koreya Respublikasi (Janubiy Koreya)",
    ),
    "ARE": (
        "United Arab Emirates",
        "Объединённые Арабские Эмираты",
        "Біріккен Араб Әмірліктері",
        "Бириккен Араб Эмирликтери",
        "Аморати Муттаҳидаи Араб",
        "Birlashgan Arab Amirliklari",
    ),
    "DEU": ("Germany", "Германия", "Германия", "Германия", "Олмон", "Germaniya"),
    "POL": ("Poland", "Польша", "Польша", "Польша", "Лаҳистон", "Polsha"),
    "GBR": (
        "United Kingdom",
        "Великобритания",
        "Ұлыбритания",
        "Улуу Британия",
        "Британияи Кабир",
        "Buyuk Britaniya",
    ),
    "USA": (
        "United States of America",
        "Соединённые Штаты Америки",
        "Америка Құрама Штаттары",
        "Америка Кошмо Штаттары",
        "Иёлоти Муттаҳидаи Амрико",
        "Amerika Qoʻshma Shtatlari",
    ),
    "CHN": ("China", "Китай", "Қытай", "Кытай", "Чин", "Xitoy"),
    "JPN": ("Japan", "Япония", "Жапония", "Жапония", "Ҷопон", "Yaponiya"),
    "BLR": ("Belarus", "Беларусь", "Беларусь", "Беларусь", "Беларус", "Belarus"),
    "UKR": ("Ukraine", "Украина", "Украина", "Украина", "Украина", "Ukraina"),
    "ISR": ("Israel", "Израиль", "Израиль", "Израиль", "Исроил", "Isroil"),
    "CZE": ("Czechia", "Чехия", "Чехия", "Чехия", "Чехия", "Chexiya"),
    "LTU": ("Lithuania", "Литва", "Литва", "Литва", "Литва", "Litva"),
    "ITA": ("Italy", "Италия", "Италия", "Италия", "Италия", "Italiya"),
    "GRC": ("Greece", "Греция", "Грекия", "Греция", "Юнон", "Gretsiya"),
    "ESP": ("Spain", "Испания", "Испания", "Испания", "Испания", "Ispaniya"),
    "FRA": ("France", "Франция", "Франция", "Франция", "Фаронса", "Fransiya"),
    "SAU": (
        "Saudi Arabia",
        "Саудовская Аравия",
        "Сауд Арабиясы",
        "Сауд Арабиясы",
        "Арабистони Саудӣ",
        "Saudiya Arabistoni",
    ),
    "QAT": ("Qatar", "Катар", "Катар", "Катар", "Қатар", "Qatar"),
}

# Hand-filled gaps in the iso-codes catalogues (Latin-script Uzbek conventions: oʻ, gʻ with U+02BB).
FILL = {
    "uz": {
        "ABW": "Aruba",
        "AGO": "Angola",
        "AND": "Andorra",
        "ARG": "Argentina",
        "ATA": "Antarktida",
        "ATF": "Fransiya Janubiy hududlari",
        "BDI": "Burundi",
        "BEN": "Benin",
        "BES": "Boneyr, Sint-Estatius va Saba",
        "BFA": "Burkina-Faso",
        "BGD": "Bangladesh",
        "BHS": "Bagama orollari",
        "BLM": "Sen-Bartelemi",
        "BOL": "Boliviya",
        "BRB": "Barbados",
        "BRN": "Bruney",
        "BVT": "Buve oroli",
        "CCK": "Kokos (Kiling) orollari",
        "CIV": "Kot-d'Ivuar",
        "COD": "Kongo Demokratik Respublikasi",
        "COG": "Kongo Respublikasi",
        "CPV": "Kabo-Verde",
        "CUW": "Kyurasao",
        "CXR": "Rojdestvo oroli",
        "EST": "Estoniya",
        "FJI": "Fiji",
        "FLK": "Folklend (Malvin) orollari",
        "FSM": "Mikroneziya",
        "GAB": "Gabon",
        "GGY": "Gernsi",
        "GIB": "Gibraltar",
        "GMB": "Gambiya",
        "GRD": "Grenada",
        "GUM": "Guam",
        "HMD": "Xerd va Makdonald orollari",
        "IMN": "Men oroli",
        "IOT": "Britaniyaning Hind okeanidagi hududi",
        "IRN": "Eron",
        "JEY": "Jersi",
        "KIR": "Kiribati",
        "LAO": "Laos",
        "LCA": "Sent-Lyusiya",
        "MAC": "Makao",
        "MAF": "Sen-Marten (Fransiya qismi)",
        "MDA": "Moldova",
        "MHL": "Marshall orollari",
        "MKD": "Shimoliy Makedoniya",
        "MLI": "Mali",
        "MLT": "Malta",
        "MSR": "Montserrat",
        "MTQ": "Martinika",
        "NER": "Niger",
        "NFK": "Norfolk oroli",
        "NIU": "Niue",
        "NPL": "Nepal",
        "NRU": "Nauru",
        "OMN": "Ummon",
        "PAN": "Panama",
        "PCN": "Pitkern orollari",
        "PER": "Peru",
        "PLW": "Palau",
        "PRK": "Koreya Xalq Demokratik Respublikasi",
        "PSE": "Falastin",
        "PYF": "Fransuz Polineziyasi",
        "REU": "Reyunon",
        "SDN": "Sudan",
        "SEN": "Senegal",
        "SGS": "Janubiy Georgiya va Janubiy Sendvich orollari",
        "SHN": "Muqaddas Yelena, Vozneseniye va Tristan-da-Kunya orollari",
        "SJM": "Shpitsbergen va Yan-Mayen",
        "SLV": "Salvador",
        "SMR": "San-Marino",
        "SWZ": "Esvatini",
        "SXM": "Sint-Marten (Niderlandiya qismi)",
        "SYR": "Suriya",
        "TCD": "Chad",
        "TGO": "Togo",
        "TKL": "Tokelau",
        "TLS": "Sharqiy Timor",
        "TON": "Tonga",
        "TUV": "Tuvalu",
        "TWN": "Tayvan",
        "TZA": "Tanzaniya",
        "UGA": "Uganda",
        "UMI": "AQShning kichik chekka orollari",
        "VAT": "Vatikan",
        "VEN": "Venesuela",
        "VGB": "Britaniya Virgin orollari",
        "VIR": "AQSh Virgin orollari",
        "VNM": "Vyetnam",
        "VUT": "Vanuatu",
        "WLF": "Uollis va Futuna",
        "WSM": "Samoa",
    },
    "ky": {"MKD": "Түндүк Македония", "SWZ": "Эсватини"},
}

# XXA is the ICAO Doc 9303 code for a stateless person: a citizenship answer only (the forms filter it out of every
# other country question), so that statelessness is one code of the citizenship question (UN 2021; IROSS 2023).
# Its iso_num 900 is from ISO 3166-1's user-assigned numeric range (900-999), so exports keep integer codes.
STATELESS = (
    "XXA",
    "Stateless (no citizenship)",
    "Лицо без гражданства",
    "Азаматтығы жоқ адам",
    "Жарандыгы жок адам",
    "Шахси бешаҳрвандӣ",
    "Fuqaroligi yoʻq shaxs",
)
TAIL = [
    ("98", "Don't know", "Не знаю", "Білмеймін", "Билбейм", "Намедонам", "Bilmayman"),
    (
        "99",
        "Refused",
        "Отказ от ответа",
        "Жауап беруден бас тартты",
        "Жооп берүүдөн баш тартты",
        "Аз ҷавоб даст кашид",
        "Javob berishdan bosh tortdi",
    ),
]


def main() -> None:
    catalogues = {
        code: gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=[code]) for code in CODES
    }
    rows = []
    for alpha3, labels in PRIORITY.items():
        country = pycountry.countries.get(alpha_3=alpha3)
        rows.append((alpha3, *labels, country.numeric, "1" if alpha3 in SURVEY_COUNTRIES else "0"))
    rest = sorted((c for c in pycountry.countries if c.alpha_3 not in PRIORITY), key=lambda c: c.name)
    missing = []
    for country in rest:
        labels = [country.name]
        for code in CODES:
            text = catalogues[code].gettext(country.name)
            if text == country.name:
                text = FILL.get(code, {}).get(country.alpha_3, "")
                if not text:
                    missing.append((code, country.alpha_3))
            labels.append(text)
        rows.append(
            (country.alpha_3, *labels, country.numeric, "1" if country.alpha_3 in SURVEY_COUNTRIES else "0")
        )
    if missing:
        raise SystemExit(f"no translation for {missing}; add them to FILL")
    rows.append((*STATELESS, "900", "0"))
    rows.extend((*t, "", "0") for t in TAIL)
    with OUT.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["list_name", "name", *[f"label::{lang}" for lang in LANGS], "iso_num", "nca"])
        for row in rows:
            writer.writerow(["countries", *row])
    print(f"wrote {OUT} ({len(rows)} rows)")


if __name__ == "__main__":
    main()
