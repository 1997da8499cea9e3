"""Identity terms: names, faiths, places of worship, nationalities and languages, each read as
one placeholder word, so that no swap of who a report names can move the model.

A report about "a man photographing the synagogue" and the same report about a church are the
same report for triage: the desk it goes to must follow what happened, not whom it happened
near. A linear model over words and character n-grams learns whatever its corpus pairs with
a label, and a corpus of public reports names some communities more often beside some labels.
Reading every term of one kind as the same placeholder removes that route entirely: the
features of "Omar Haddad" and "Oliver Bennett", of "mosque" and "church", are identical, so
their scores are too. What stays is the fact that a place of worship, a person or a faith is
named, which real reports need (an attack on a place of worship is a terrorism concern).

What is read as an identity term:

- places of worship (any case): mosque, synagogue, church, gurdwara, temple, ... -> ``xxworship``
- faiths and their followers (any case, except words that are also ordinary English, which
  must be capitalised): Muslim, Jewish, Sikh, Hindu, ... -> ``xxfaith``. Ideologies and the
  names of proscribed groups are *not* identity terms and are left alone ("Islamist",
  "jihadist", "Islamic State", "neo-Nazi").
- nationalities, peoples and languages (any case, the same exception): Pakistani, Polish,
  Somali, Arabic, Urdu, ... -> ``xxorigin``. Countries and cities are places, not people, and
  are left alone: travel to a conflict zone is evidence, a passport's nationality is not.
- personal names: a listed given name, capitalised, and the capitalised surname that follows it
  ("Arjun Patel", "Sean O'Brien", "Omar al-Haddad"); a capitalised word after a title ("Mr
  Hussain"; the title stays). -> ``xxname``. Names that are also ordinary words (Will, May,
  Grace, Jordan...) are not listed.

Matching is one regular expression built as a trie of the listed words, so it costs one pass
over the text whatever the size of the lists, and, like every pattern in the normaliser, cannot
backtrack (possessive quantifiers; each character matched one way only).
"""

from __future__ import annotations

from collections.abc import Iterable

WORSHIP, FAITH, ORIGIN, NAME = "xxworship", "xxfaith", "xxorigin", "xxname"
PLACEHOLDERS = frozenset({WORSHIP, FAITH, ORIGIN, NAME})

_PLACES_OF_WORSHIP = """
    mosque masjid synagogue shul church chapel cathedral gurdwara gurudwara temple mandir
    pagoda vihara meetinghouse tabernacle
"""
# Faiths, their adjectives and their followers (plurals are added below).
_FAITHS = """
    Muslim Moslem Islam Islamic Jew Jewish Judaism Christian Christianity Sikh Sikhism Hindu
    Hinduism Buddhist Buddhism Catholic Catholicism Protestant Anglican Methodist Baptist
    Pentecostal
    Evangelical Quaker Mormon Jain Jainism Rastafarian Bahai Zoroastrian Parsi Sunni Shia
    Shiite Ahmadi Ahmadiyya Alevi Druze Coptic Copt Yazidi Hasidic Haredi Sufi Salafi Wahhabi
    Pagan Wiccan Atheist Agnostic Unitarian
"""
# Also ordinary English words: an identity term only when capitalised.
_FAITHS_CAPITALISED = "Orthodox"

_ORIGINS = """
    Afghan Albanian Algerian American Angolan Argentine Argentinian Armenian Australian
    Austrian Azerbaijani Bangladeshi Belarusian Belgian Bolivian Bosnian Brazilian British
    Briton Bulgarian Burmese Cambodian Cameroonian Canadian Chechen Chilean Chinese Colombian
    Congolese Croatian Cuban Cypriot Danish Ecuadorian Egyptian English Eritrean Estonian
    Ethiopian Filipino Filipina Finnish Gambian German Ghanaian Guatemalan Guinean
    Haitian Hungarian Icelandic Indian Indonesian Iranian Iraqi Irish Israeli Italian
    Ivorian Jamaican Japanese Jordanian Kazakh Kenyan Korean Kosovan Kosovar Kurd Kurdish
    Kuwaiti Kyrgyz Latvian Lebanese Liberian Libyan Lithuanian Macedonian Malawian Malaysian
    Malian Maltese Mauritian Mexican Moldovan Mongolian Montenegrin Moroccan Nepalese Nepali
    Nigerian Nigerien Norwegian Omani Pakistani Palestinian Persian Peruvian Portuguese
    Qatari Romanian Russian Rwandan Saudi Scottish Senegalese Serbian Singaporean Slovak
    Slovakian Slovenian Somali Somalian Sudanese Swedish Syrian Taiwanese Tajik Tanzanian
    Tibetan Togolese Tunisian Turkish Turkmen Ugandan Ukrainian Uruguayan Uzbek Venezuelan
    Vietnamese Welsh Yemeni Zambian Zimbabwean Emirati Bahraini Cornish Manx
    Arab Arabian Asian African European Caribbean Latino Latina Hispanic Pashtun Punjabi
    Bengali Gujarati Tamil Sinhalese Kashmiri Baloch Sindhi Hazara Uyghur Rohingya Berber
    Amazigh Romani Gypsy Scandinavian Slavic Balkan Celtic Anglo Aboriginal Maori Inuit
    Arabic Urdu Hindi Hebrew Yiddish Mandarin Cantonese Pashto Dari Farsi Tigrinya Amharic
    Swahili Yoruba Igbo Hausa Twi Akan Tagalog Gaelic Lingala Oromo Malay Ukranian
"""
# Also ordinary English words, or parts of common names: identity terms only when capitalised.
_ORIGINS_CAPITALISED = """
    Polish Pole Dutch Swiss French Spanish Scots Scot Brit Turk Thai Czech Roma Lao Georgian
    Finn Dane Swede Greek Bajan Hmong
"""

# Given names of people from many communities (common ones, not exhaustive), capitalised in
# text. Names that are also ordinary words or places are left out on purpose.
_GIVEN_NAMES = """
    Oliver Emma Sam Samuel Samantha Thomas Tom James Jim Jimmy Harry Jack Charlie George Henry
    William Edward Ed Alfie Archie Freddie Theo Noah Leo Oscar Arthur Daniel Dan Danny Matthew
    Matt Andrew Andy Michael Mike Christopher Chris Paul Peter Steven Steve Stephen Richard
    Robert Bob John Johnny Jon Jonathan David Dave Simon Gary Kevin Ian Neil Martin Lee Scott
    Ryan Adam Luke Ben Benjamin Joe Joseph Josh Joshua Liam Callum Connor Kieran Declan Lewis
    Alex Alexander Nathan Tyler Jamie Olivia Amelia Isla Ava Mia Sophie Sophia Emily Lily
    Ella Chloe Charlotte Lucy Jessica Jess Hannah Sarah Rachel Rebecca Laura Lauren Megan
    Katie Kate Kathryn Catherine Elizabeth Helen Claire Clare Emma Louise Nicola Michelle
    Karen Susan Sue Julie Jane Janet Margaret Mary Anne Ann Alice Eleanor Evie Poppy Freya
    Daisy Holly Zoe Abigail Amy Natalie Gemma Kelly Stacey Tracey Donna Linda Sandra Carol
    Siobhan Sean Seamus Padraig Patrick Niamh Aoife Ciara Orla Roisin Caoimhe Eoin Cian
    Ciaran Oisin Aidan Brendan Colm Conor Fionn Saoirse Sinead Mairead Bridget Dermot
    Fergus Eamon Eamonn Rory Ruairi Shane Darragh Cillian Grainne Nuala Deirdre
    Arjun Rahul Rohan Ravi Raj Rajesh Sanjay Vijay Amit Anil Sunil Deepak Vikram Aditya
    Krishna Priya Anjali Pooja Neha Sunita Anita Kavita Meera Divya Lakshmi Shreya Aarav
    Vivaan Ishaan Ananya Diya Harpreet Gurpreet Manpreet Jaspreet Simran Harjit Jasvinder
    Kuldeep Navdeep Baljit Sukhdev Amarjit Ranjit Gurdeep Parminder Rajinder Sandeep
    Mohammed Mohammad Muhammad Mohamed Mohamad Ahmed Ahmad Ali Hassan Hussein Hussain Ibrahim
    Ismail Yusuf Youssef Omar Umar Abdullah Abdul Abdi Abdirahman Abdulrahman Mustafa Khalid
    Tariq Imran Bilal Hamza Zain Zayn Faisal Karim Rashid Salman Sami Tahir Usman Waleed
    Yasin Yassin Zaid Amir Nasser Nasir Jamal Idris Bashir Farah Fatima Aisha Ayesha
    Khadija Maryam Mariam Zainab Zahra Layla Leila Noor Nour Amina Amira Yasmin Yasmine
    Samira Hana Hanan Huda Salma Rania Nadia Sara Safiya Sumaya Hodan Hibo Fadumo Ayan
    Asha Warsame Abdikarim Abshir Mahad
    Chinedu Chidi Emeka Obinna Nnamdi Ikenna Chukwuemeka Ngozi Chioma Adaeze Nkechi
    Oluwaseun Olumide Tunde Babatunde Femi Funmilayo Folake Yetunde Bola Kwame Kofi Kwabena
    Yaw Akua Ama Abena Efua Esi Kwesi Kojo Adwoa Tendai Tatenda Thabo Sipho Themba Lerato
    Zanele Nomvula Amara Chiamaka Ifeoma Uchenna Segun Wale Dapo Kemi Bisi Jide Dayo Ayo
    Wei Li Ming Jun Hui Ying Xiao Yan Lei Jing Hao Yu Zhen Chen Xin Yi Bo Jian Qiang Fang
    Mei Lin Ling Hiroshi Takeshi Kenji Yuki Yuko Haruto Sakura Aiko Akira Kaito Haruka
    Minh Thanh Huong Linh Tuan Nguyen Jin Hyun Seo Ji Min Soo Joon Jae
    Piotr Pawel Tomasz Krzysztof Marek Michal Jakub Kasia Katarzyna Agnieszka Magdalena
    Malgorzata Joanna Ewa Zofia Andrzej Grzegorz Lukasz Wojciech Bartosz Mateusz
    Daniela Ioana Andreea Mihai Andrei Ionut Alexandru Bogdan Florin Cristina Elena Mirela
    Vasile Gheorghe Dmitri Dmitry Sergei Sergey Ivan Igor Oleg Vladimir Alexei Aleksandr
    Natalia Olga Svetlana Tatiana Irina Yulia Oksana Olena Taras Mykola Bohdan Viktor
    Janis Tomas Jonas Darius Ruta Vytautas Gintare
    Yosef Moshe Avraham Yitzhak Shlomo Chaim Menachem Mordechai Eliezer Yehuda Ari Avi Eitan
    Noam Shira Tamar Rivka Miriam Esther Leah Chana Devorah Yael Talia Ruth Naomi Judith
    Levi Aharon Reuven Shmuel
    Marcus Andre Dwayne Delroy Winston Errol Leroy Desmond Tyrone Jermaine Marlon Shanice
    Tanisha Keisha Latoya Aaliyah Jada Kemar Shaquille Jermain Tremaine Kareem
    Jose Juan Carlos Luis Miguel Javier Alejandro Diego Pablo Sergio Antonio Manuel Francisco
    Maria Carmen Lucia Isabel Sofia Valentina Camila Gabriela Paula Marta Ana Joao Pedro
    Tiago Rui Mario Giuseppe Giovanni Marco Luca Matteo Francesca Giulia Chiara Alessandra
    Pierre Jean Jacques Francois Louis Nicolas Antoine Mathieu Camille Chloé Manon Amelie
    Hans Klaus Jurgen Stefan Lukas Felix Maximilian Anna Katharina Lena Ingrid Sven Lars
    Erik Nils Astrid Sigrid Mehmet Mustafa Emre Burak Murat Kemal Ayse Elif Zeynep Fatma
    Reza Hamid Mehdi Hossein Arash Dariush Parisa Shirin Farzana Nasrin Roya Darya Navid
    Ahmadullah Gulalai Zarghuna Wahid Habib Naveed Nadeem Shahid Asif Zubair Waqas Adeel
    Kamran Irfan Junaid Saeed Shabana Nasreen Rukhsana Shazia Saima Rubina Bushra
    Rhys Dylan Gareth Dafydd Owain Bethan Cerys Sian Ffion Gwen Iwan Huw Emyr Carys Aled Rhian
    Alasdair Hamish Iain Morag Eilidh Ailsa Callum Euan Fraser Kirsty Mhairi Catriona Angus
    Adeel Adnan Faisal Tanveer Shahzad Arshad Pervez Zahid Sajid Wasim Nabila Samina Tahira
    Kayode Olusegun Adebayo Chukwudi Ebere Tobi Temi Damilola Folasade Ifeoluwa Zainab
"""


def _words(block: str) -> list[str]:
    return block.split()


_TITLES = frozenset(_words("Mr Mrs Ms Mx Miss Dr Prof Sir Dame Sheikh Imam Rabbi Rev Pastor"))
# Lower-case particles that may open a surname: "Omar al Haddad", "David van der Berg".
_PARTICLES = frozenset(_words("al el bin ibn abu van von der den de da di du la le ben bat ap"))
# Punctuation a word may carry at either end ("synagogue;", "(Mr").
_EDGES = ".,;:!?\"'()[]{}<>“”‘’«»–—/…*"
_POSSESSIVES = ("'s", "’s", "'", "’")


def _with_plurals(words: Iterable[str]) -> set[str]:
    out: set[str] = set()
    for word in words:
        out.add(word)
        if word.endswith(("ese", "ss", "sh", "ch", "ism", "ity", "am", "aic", "ish")):
            continue  # no plural (Chinese, Swiss, Danish, Judaism, Islam...)
        out.add(word + ("es" if word.endswith("x") else "s"))
    return out


_ANY_CASE = {
    **{w.lower(): WORSHIP for w in _with_plurals(_words(_PLACES_OF_WORSHIP))},
    **{w.lower(): FAITH for w in _with_plurals(_words(_FAITHS))},
    **{w.lower(): ORIGIN for w in _with_plurals(_words(_ORIGINS))},
}
_ANY_CASE["churches"] = WORSHIP
_CAPITALISED_ONLY = {
    **{w: FAITH for w in _with_plurals(_words(_FAITHS_CAPITALISED))},
    **{w: ORIGIN for w in _with_plurals(_words(_ORIGINS_CAPITALISED))},
}
_GIVEN = (
    frozenset(_words(_GIVEN_NAMES)) - set(_CAPITALISED_ONLY) - {w.capitalize() for w in _ANY_CASE}
)

# Every spelling that is looked up: any-case words in lower, Capitalised and UPPER case (other
# mixtures are not read as identity terms), the rest exactly as listed.
_LOOKUP: dict[str, str] = {}
for _word, _placeholder in _ANY_CASE.items():
    for _form in (_word, _word.capitalize(), _word.upper()):
        _LOOKUP[_form] = _placeholder
_LOOKUP.update(_CAPITALISED_ONLY)
_LOOKUP.update(dict.fromkeys(_GIVEN, NAME))


def _core(token: str) -> str:
    """The word inside ``token``: edge punctuation and a possessive ending removed."""
    core = token.strip(_EDGES)
    for ending in _POSSESSIVES:
        if core.endswith(ending) and len(core) > len(ending):
            return core[: -len(ending)].strip(_EDGES)
    return core


def _kind(core: str) -> tuple[str | None, str]:
    """The placeholder for ``core`` and the part of it that it replaces."""
    kind = _LOOKUP.get(core)
    if kind is not None or "-" not in core:
        return kind, core
    # A compound is an identity term when its first part is one: "Polish-born" reads as
    # "xxorigin-born", "Sikh-run" as "xxfaith-run".
    first = core.partition("-")[0]
    return _LOOKUP.get(first), first


def _capitalised(core: str) -> bool:
    return core[:1].isupper() and core[1:2] != "" and not core.isupper()


def _unknown_name(word: str, known_words: frozenset[str] | None) -> bool:
    # Latin script only: text in another script is out of the model's scope and must stay
    # recognisably so (it has no evidence), not become a name.
    return (
        known_words is not None
        and word[:1] < "\u0250"
        and _capitalised(word)
        and word not in _TITLES
        and word.lower() not in known_words
    )


# How one word reads, whatever surrounds it: the word with its placeholder (None: unchanged),
# whether a surname may follow it (a listed name or a title, with no punctuation after it),
# and whether the next word decides (an "Islamic" that may open "Islamic State").
_Reading = tuple[str | None, bool, bool]
_ORDINARY: _Reading = (None, False, False)
# Distinct words whose reading is remembered, per set of model words; beyond this the memo
# starts again (rare words and ids would otherwise grow it without bound in a server).
MEMO_WORDS = 200_000
_MEMOS: dict[frozenset[str] | None, tuple[dict[str, _Reading], set[str]]] = {}


def _read(token: str, known_words: frozenset[str] | None) -> _Reading:
    core = _core(token)
    if not core:
        return _ORDINARY
    kind, part = _kind(core)
    unlisted = kind is None and core.isalpha() and _unknown_name(core, known_words)
    if unlisted:
        kind, part = NAME, core
    bare = token.lstrip(_EDGES) == core or token.lstrip(_EDGES).rstrip(".") == core
    # A surname follows a listed name or a title directly: "Omar Haddad", "(Mr. Patel", not
    # "Omar, Haddad"; nor a word read as a name only because the model never saw it (in
    # "Mundesley Police Station", "Police" is no surname).
    surname = bare and ((kind == NAME and not unlisted) or (kind is None and core in _TITLES))
    islamic = kind == FAITH and core.lower() == "islamic"
    replaced = None if kind is None else token.replace(part, kind, 1)
    return replaced, surname, islamic


def _memo(known_words: frozenset[str] | None) -> tuple[dict[str, _Reading], set[str]]:
    """How each word reads alone, and the set of the words that read as ordinary."""
    memo = _MEMOS.get(known_words)
    if memo is None or len(memo[0]) >= MEMO_WORDS:
        if len(_MEMOS) >= 8:  # models come and go in a long-running server
            _MEMOS.clear()
        memo = _MEMOS[known_words] = ({}, set())
    return memo


def mask_identity_terms(text: str, known_words: frozenset[str] | None = None) -> str:
    """``text`` with every identity term replaced by its placeholder word.

    With ``known_words`` (lower-case words the model was trained on), a capitalised word not
    among them is read as a name too: a name the lists lack ("Ahanu Redcloud") must not move
    the model either, and a proper noun it never saw carries nothing it learned, only the
    accidental character n-grams it shares with other words.

    Words are what lies between single spaces (the normaliser folds all whitespace to one
    space). How a word reads alone is remembered, so most words cost one dictionary lookup;
    only the few that are or may open identity terms are looked at with their neighbours.
    """
    tokens = text.split(" ")
    memo, ordinary = _memo(known_words)
    others = set(tokens).difference(ordinary)  # most reports: a few names and places
    if not others:
        return text
    todo = [i for i, token in enumerate(tokens) if token in others]
    changed = False
    done_until = -1  # words up to here were read with an earlier one (a surname, "State")
    for i in todo:
        if i <= done_until:
            continue
        token = tokens[i]
        reading = memo.get(token)
        if reading is None:
            reading = _read(token, known_words)
            if reading == _ORDINARY:
                reading = _ORDINARY
                ordinary.add(token)
            memo[token] = reading
        replaced, surname, islamic = reading
        if islamic and i + 1 < len(tokens) and _core(tokens[i + 1]).lower() == "state":
            done_until = i + 1  # a proscribed group's name, not a faith
            continue
        if replaced is not None:
            tokens[i] = replaced
            changed = True
        if surname:
            end = _surname_end(tokens, i + 1)
            if end is not None:
                for k in range(i + 1, end + 1):
                    tokens[k] = tokens[k].replace(_core(tokens[k]), NAME, 1)
                changed, done_until = True, end
    return " ".join(tokens) if changed else text


def _surname_end(tokens: list[str], start: int) -> int | None:
    """Where the surname that starts at ``tokens[start]`` ends (up to two particles, then a
    capitalised word), or None if none starts there."""
    if start >= len(tokens):
        return None
    end = start
    while end < len(tokens) - 1 and end - start < 2 and _core(tokens[end]) in _PARTICLES:
        end += 1
    surname = _core(tokens[end])
    if not _capitalised(surname) or surname in _TITLES:
        return None
    return end


def corpus_words(texts: Iterable[str], min_count: int = 2) -> frozenset[str]:
    """The words a model trained on ``texts`` knows: lower-case words (letters only) that occur
    at least ``min_count`` times, read as :func:`mask_identity_terms` reads them, less every
    word that the texts also use as a name.

    A word is used as a name when it follows a name directly ("Adeel Mahmood Qureshi": once
    "Adeel Mahmood" is read as a name, "Qureshi" is one too). Two readings find them: the
    lists alone, then the lists and the words of the first reading (which turns "Rhys" into a
    name, and so "Oyelaran" after it). Without this, a surname the corpus happens to hold a
    few times, most likely beside one label, would keep the weight it learnt there.
    """
    texts = list(texts)
    known = _counted(texts, None, min_count)
    return _counted(texts, known, min_count)


def _counted(texts: list[str], known: frozenset[str] | None, min_count: int) -> frozenset[str]:
    counts: dict[str, int] = {}
    names: set[str] = set()
    for text in texts:
        after_name = False
        for token in mask_identity_terms(text, known).split(" "):
            core = _core(token)
            if not core.isalpha():
                after_name = False
                continue
            word = core.lower()
            counts[word] = counts.get(word, 0) + 1
            if after_name and _capitalised(core):
                names.add(word)
            bare = token.lstrip(_EDGES) == core or token.lstrip(_EDGES).rstrip(".") == core
            after_name = bare and (core == NAME or core in _TITLES)
    return frozenset(w for w, n in counts.items() if n >= min_count and w not in names)


def is_placeholder_term(term: str) -> bool:
    """Whether a feature name (a word or word pair) holds a placeholder: never shown as a
    reason, because it stands for whoever or wherever the report named."""
    return any(word in PLACEHOLDERS for word in term.split())
