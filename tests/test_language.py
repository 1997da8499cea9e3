"""The language check: foreign reports are out of scope, English ones (names, quotes, a line of
another language included) are not, and nothing a caller can send makes it raise or stall.

Every example text here was written for this file.
"""

from __future__ import annotations

import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from triage.core.language import (
    ENGLISH_FUNCTION_WORDS,
    LANGUAGES,
    WINDOW,
    LanguageCheck,
    LanguageVerdict,
    english_fast_path,
)

# --- English reports, about 1,700 characters each ---------------------------------------------

EN_FRAUD = (
    "On Monday afternoon my mother, who is 81 and lives on her own, got a phone call from a man "
    "who said he was a detective from the fraud squad at Scotland Yard. He told her that staff at "
    "her bank branch had been arrested for taking money from customers and that her account was "
    "no longer safe. He asked her to help with the investigation by drawing out five thousand "
    "pounds in cash and handing it to a courier who would take it away as evidence. He stayed on "
    "the line the whole time she was at the bank and told her not to tell the cashier why she "
    "wanted the money, because the cashier might be part of the gang. When she got home a young "
    "man in a dark blue car came to the door, showed her what looked like a warrant card and "
    "took the envelope. He said the money would be paid back into her account within two days "
    "and that she should not talk to anyone about it. The next morning the same caller rang "
    "again and said they needed her bank card and her PIN as well, and that a second courier "
    "would collect them. That is when she rang me. I have checked with the bank and nobody from "
    "the police has contacted them. The caller's number was withheld and the courier was about "
    "twenty five, slim, with short dark hair and a grey puffer jacket. She thinks the car was a "
    "Ford but she did not see the registration. I am worried that they will come back because "
    "they know where she lives and they know she is on her own most of the week. She is very "
    "upset and embarrassed and she has not slept since it happened. I would like someone to "
    "contact us and tell us what we should do next, and whether the money can be traced."
)

EN_CYBER = (
    "I am writing to report that my email account and two of my social media accounts were "
    "taken over last night. At about eleven o'clock I got a text message with a login code that "
    "I had not asked for, and a few minutes later I was logged out of everything on my phone. "
    "When I tried to sign back in, the password had been changed and the recovery email address "
    "had been replaced with one I have never seen. Since then the person who has my accounts has "
    "been sending messages to my friends and family asking them to buy gift cards for me because "
    "I am supposedly stuck abroad, and at least one of my cousins has already sent them money. "
    "They have also posted links on my page that my friends say lead to a fake login site. I use "
    "the same password on a few older sites and I think one of them might have been breached, "
    "because I got a warning about that a month ago and did not do anything about it. I have "
    "now changed the passwords on my bank and on everything else I could think of, and I have "
    "turned on two step verification where I still have access. The email provider says it can "
    "take up to a week to get the account back. I am worried that they can see all of my old "
    "emails, which include scans of my passport and a tenancy agreement with my address on it. "
    "I have kept screenshots of the messages they sent and of the alerts I received, with the "
    "times on them. Please tell me whether I should report this anywhere else and what I can do "
    "to stop them from using my name to open new accounts or take out loans while this is going "
    "on. I have also warned my friends not to reply to any message that looks like it is from me."
)

EN_TERROR = (
    "I work in a cafe near the main entrance of the shopping centre and I want to report "
    "something that has been bothering me for about two weeks. The same man has come in almost "
    "every day around lunchtime, always sits at the table by the window and spends most of his "
    "time looking at the entrance and the security desk rather than at his food. On three "
    "occasions I saw him writing in a small notebook each time the guards changed shift, and "
    "yesterday he was filming the doors and the ceiling on his phone and then the service "
    "corridor that leads to the delivery area. When one of the guards walked past he put the "
    "phone away very quickly and left without finishing his drink. Today he came in with a "
    "large heavy sports bag that he kept between his feet the whole time, and when he left he "
    "walked towards the lower car park instead of the bus station where he usually goes. I "
    "heard him say on the phone that everything would be ready for Saturday and that it would "
    "be busy because of the concert. He is in his thirties, tall, with a short beard, and wears "
    "a black cap and a green jacket with a torn pocket. I do not know if this is anything at "
    "all and I do not want to get anyone into trouble, but my manager said I should tell the "
    "police rather than just the centre's security team, because of the concert at the arena "
    "next door this weekend. I can give a statement and the cafe has a camera over the till "
    "that may have recorded him clearly. I am working every day this week from eight until four "
    "if someone would like to come and speak to me or look at the camera."
)

EN_GENERAL = (
    "For the last three months the flat above ours has been used for what looks like short "
    "term lets, and the noise has become unbearable. Every weekend there is a new group of "
    "people who arrive with suitcases late on Friday, play loud music until four or five in the "
    "morning and leave rubbish bags on the stairs and in the shared garden. Last Saturday there "
    "were at least thirty people in the flat and some of them were shouting and throwing bottles "
    "from the balcony into the street. One of the bottles landed next to a man walking his dog "
    "and he was lucky not to be hurt. When my husband went up to ask them to turn the music down "
    "he was sworn at and told to mind his own business. The front door of the building is often "
    "left open now and we have found strangers sleeping in the hallway twice. We have written "
    "to the landlord and to the managing agent but neither of them has replied, and the council "
    "noise team only works until midnight, so by the time they could come the party is usually "
    "still going. We have two young children who cannot sleep and my elderly neighbour on the "
    "ground floor is frightened to go out in the evening because of the people on the stairs. "
    "I have kept a diary of the dates and times and I have recordings of the noise on my phone. "
    "I am not sure whether this is something the police deal with or only the council, but we "
    "feel that it is getting worse and that someone is going to get hurt. Please can you advise "
    "us on who we should contact, and whether anything can be done before this weekend, as the "
    "listing online shows that the flat has been booked again from Friday."
)

# English with foreign names, places, a quoted Chinese sentence, a Polish greeting and a line
# of Welsh: all of it must stay English.
EN_NAMES = (
    "Dzień dobry, my name is Agnieszka Wiśniewska and I live in Walthamstow with my partner "
    "Mehmet Yılmaz. Our neighbour, Mr Zhang Wei from the shop on Hoe Street, told us that a man "
    "had been asking about our car. He said the man shouted 你们会后悔的 at him when he refused "
    "to answer, which means something like 'you will regret it'. Last week we were visiting my "
    "family in Łódź and Kraków and while we were away someone tried to force the lock on our "
    "garage. My partner's cousin Siân, who is from Aberystwyth, was looking after the house and "
    "she wrote on the family chat 'Mae rhywun wedi torri i mewn i'r garej' before she called "
    "us. The man was seen by Mrs Nguyễn Thị Hoa at number 14 and by José Álvarez who works at "
    "the café on the corner of Orford Road. We have photos of the damage to the lock."
)

# Clipped, note-like English with few function words: the detector decides, and says English.
EN_TERSE = (
    "Suspicious vehicle. White transit van, no plates, parked outside primary school gates "
    "three mornings running. Driver male, 40s, hi-vis vest, filming children arriving. Left "
    "quickly when approached by caretaker. Van seen again Friday near leisure centre car park."
)

# --- Reports in other languages ------------------------------------------------------------

ZH_THREAT = (
    "我在伦敦国王十字地铁站放了一个炸弹。明天中午十二点它会爆炸。如果你们不在今天晚上之前"
    "把钱转到我的账户，很多人会死。这不是玩笑，我已经准备好了，不要试图找我。"
)
AR_THREAT = (
    "لقد وضعت قنبلة في محطة القطار في وسط لندن. ستنفجر غدا عند الساعة الثانية عشرة ظهرا. "
    "إذا لم تدفعوا المال قبل مساء اليوم فسيموت كثير من الناس. هذه ليست مزحة، كل شيء جاهز."
)
RU_THREAT = (
    "Я заложил бомбу на вокзале Кингс-Кросс. Она взорвётся завтра в полдень. Если вы не "
    "переведёте деньги на мой счёт до вечера, погибнет много людей. Это не шутка, всё готово."
)
PL_FRAUD = (
    "Dzień dobry, piszę w sprawie oszustwa. Wczoraj zadzwonił do mnie mężczyzna, który "
    "przedstawił się jako pracownik mojego banku. Powiedział, że ktoś próbuje ukraść pieniądze "
    "z mojego konta i że muszę je szybko przelać na bezpieczne konto. Przelałam cztery tysiące "
    "funtów. Dzisiaj bank powiedział mi, że nikt od nich do mnie nie dzwonił."
)
# Polish with a few English words: still Polish.
PL_WITH_ENGLISH = (
    "Kupiłem telefon na stronie, która wyglądała jak prawdziwy sklep. Było tam napisane "
    "'limited offer' i 'free delivery', więc zapłaciłem od razu kartą. Telefon nigdy nie "
    "przyszedł, a sklep zniknął z internetu. Na mojej karcie jest teraz kilka innych płatności, "
    "których nie robiłem. Bank mówi, że to był phishing."
)
UR_FRAUD = (
    "میرے والد کو ایک شخص نے فون کیا اور کہا کہ وہ بینک سے بول رہا ہے۔ اس نے کہا کہ ان کے "
    "اکاؤنٹ میں مسئلہ ہے اور انہیں اپنا پن کوڈ بتانا ہوگا۔ اس کے بعد ان کے اکاؤنٹ سے دو ہزار "
    "پاؤنڈ نکال لیے گئے۔ براہ کرم ہماری مدد کریں۔"
)
RO_FRAUD = (
    "Bună ziua, vreau să raportez o fraudă. Am cumpărat o mașină de pe un site de anunțuri și am "
    "plătit un avans de o mie de lire sterline prin transfer bancar. După plată, vânzătorul nu a "
    "mai răspuns la telefon și anunțul a dispărut. Cred că a fost o înșelătorie și că mai multe "
    "persoane au fost păcălite la fel."
)
ES_FRAUD = (
    "Buenas tardes, quiero denunciar una estafa. Recibí un mensaje de texto que parecía de mi "
    "banco diciendo que había un pago sospechoso en mi cuenta. Llamé al número del mensaje y un "
    "hombre me pidió los datos de mi tarjeta y el código que me llegó al móvil. Al día siguiente "
    "me habían quitado dos mil libras de la cuenta."
)
# Chinese with brand names in Latin letters: still Chinese.
ZH_WITH_ENGLISH = (
    "我在 Facebook Marketplace 上买了一部 iPhone，卖家让我用 PayPal 的朋友付款方式付钱。"
    "我付了钱以后他就把我拉黑了，手机也一直没有寄过来。我一共损失了八百英镑，请帮帮我。"
)

FOREIGN: dict[str, str] = {
    "zh": ZH_THREAT,
    "ar": AR_THREAT,
    "ru": RU_THREAT,
    "pl": PL_FRAUD,
    "ur": UR_FRAUD,
    "ro": RO_FRAUD,
    "es": ES_FRAUD,
    "fr": (
        "Bonjour, je voudrais signaler un comportement suspect. Depuis trois jours, un homme "
        "prend des photos de l'entrée de l'école de mon fils et note l'heure d'arrivée des "
        "enfants. Il porte toujours un sac à dos noir et ne parle à personne. Les autres parents "
        "ont peur et nous ne savons pas quoi faire."
    ),
    "de": (
        "Guten Tag, ich möchte einen Betrug melden. Jemand hat sich am Telefon als Polizist "
        "ausgegeben und meiner Mutter gesagt, dass ihr Geld auf der Bank nicht sicher sei. Sie "
        "hat ihm ihre Bankkarte und ihre Geheimzahl gegeben. Danach wurden mehrere tausend Pfund "
        "von ihrem Konto abgehoben."
    ),
    "it": (
        "Buongiorno, vorrei segnalare che il mio account di posta elettronica è stato violato. "
        "Qualcuno ha cambiato la password e ha inviato messaggi a tutti i miei contatti chiedendo "
        "soldi. Non riesco più ad accedere e temo che abbiano anche i dati della mia carta."
    ),
    "pt": (
        "Boa tarde, quero denunciar uma burla. Comprei bilhetes para um concerto numa página de "
        "internet e paguei com transferência bancária. Os bilhetes nunca chegaram e o vendedor "
        "desapareceu. Descobri depois que outras pessoas também foram enganadas pelo mesmo homem."
    ),
    "tr": (
        "Merhaba, bir dolandırıcılığı bildirmek istiyorum. Annem bir telefon aldı ve arayan kişi "
        "kendisini polis memuru olarak tanıttı. Annemin banka hesabındaki paranın tehlikede "
        "olduğunu söyledi ve parayı başka bir hesaba göndermesini istedi."
    ),
    "lt": (
        "Laba diena, noriu pranešti apie sukčiavimą. Vakar man paskambino žmogus, kuris "
        "prisistatė banko darbuotoju. Jis pasakė, kad mano sąskaitoje yra įtartinų mokėjimų, ir "
        "paprašė pervesti pinigus į saugią sąskaitą."
    ),
    "uk": (
        "Добрий день, я хочу повідомити про шахрайство. Мені зателефонував чоловік, який сказав, "
        "що працює в банку. Він попросив назвати код із повідомлення, і після цього з моєї "
        "картки зникли всі гроші. Будь ласка, допоможіть мені."
    ),
    "fa": (
        "سلام، می‌خواهم یک کلاهبرداری را گزارش کنم. مردی به من زنگ زد و گفت از بانک تماس "
        "می‌گیرد. او گفت که حساب من در خطر است و باید پولم را به حساب دیگری منتقل کنم. من هزار "
        "پوند فرستادم و حالا بانک می‌گوید که هیچ‌کس با من تماس نگرفته است."
    ),
    "hi": (
        "नमस्ते, मैं एक धोखाधड़ी की शिकायत करना चाहता हूँ। कल एक आदमी ने मुझे फोन किया और कहा कि "
        "वह बैंक से बोल रहा है। उसने मेरे कार्ड का नंबर और पिन माँगा। उसके बाद मेरे खाते से दो "
        "हज़ार पाउंड निकाल लिए गए।"
    ),
    "bn": (
        "নমস্কার, আমি একটি প্রতারণার কথা জানাতে চাই। গতকাল একজন লোক আমাকে ফোন করে বলল যে সে "
        "ব্যাংক থেকে বলছে। সে আমার কার্ডের নম্বর আর পিন চাইল। তারপর আমার অ্যাকাউন্ট থেকে দুই "
        "হাজার পাউন্ড চুরি হয়ে গেছে।"
    ),
    "pa": (
        "ਸਤ ਸ੍ਰੀ ਅਕਾਲ, ਮੈਂ ਇੱਕ ਧੋਖਾਧੜੀ ਦੀ ਸ਼ਿਕਾਇਤ ਕਰਨਾ ਚਾਹੁੰਦਾ ਹਾਂ। ਕੱਲ੍ਹ ਇੱਕ ਆਦਮੀ ਨੇ ਮੈਨੂੰ ਫ਼ੋਨ ਕੀਤਾ "
        "ਅਤੇ ਕਿਹਾ ਕਿ ਉਹ ਬੈਂਕ ਤੋਂ ਬੋਲ ਰਿਹਾ ਹੈ। ਉਸ ਨੇ ਮੇਰਾ ਪਿੰਨ ਮੰਗਿਆ ਅਤੇ ਫਿਰ ਮੇਰੇ ਖਾਤੇ ਵਿੱਚੋਂ ਪੈਸੇ ਕੱਢ ਲਏ।"
    ),
    "gu": (
        "નમસ્તે, હું એક છેતરપિંડીની ફરિયાદ કરવા માંગુ છું. ગઈકાલે એક માણસે મને ફોન કર્યો અને "
        "કહ્યું કે તે બેંકમાંથી બોલે છે. તેણે મારો પિન નંબર માંગ્યો અને પછી મારા ખાતામાંથી પૈસા "
        "કાઢી લીધા."
    ),
    "ta": (
        "வணக்கம், நான் ஒரு மோசடி பற்றி புகார் செய்ய விரும்புகிறேன். நேற்று ஒருவர் எனக்கு போன் "
        "செய்து வங்கியிலிருந்து பேசுவதாக சொன்னார். அவர் என் பின் எண்ணை கேட்டார், பிறகு என் "
        "கணக்கிலிருந்து பணம் எடுக்கப்பட்டது."
    ),
    "so": (
        "Waxaan rabaa inaan ka warbixiyo khiyaano. Nin ayaa i soo wacay oo igu yiri wuxuu ka "
        "yimid bangiga. Wuxuu i weydiiyay lambarka sirta ah ee kaarkayga, kadibna lacag badan "
        "ayaa laga qaaday akoonkayga. Fadlan i caawiya."
    ),
    "tl": (
        "Magandang araw, gusto kong mag-ulat ng panloloko. Kahapon may tumawag sa akin at "
        "nagpakilalang taga-bangko. Hiningi niya ang numero ng aking card at ang PIN, at "
        "pagkatapos ay nawala ang pera sa aking account. Sana ay matulungan ninyo ako."
    ),
    "vi": (
        "Xin chào, tôi muốn báo cáo một vụ lừa đảo. Hôm qua có một người đàn ông gọi điện cho tôi "
        "và nói rằng anh ta làm việc ở ngân hàng. Anh ta hỏi số thẻ và mã PIN của tôi, sau đó "
        "tiền trong tài khoản của tôi đã bị lấy mất."
    ),
    "yo": (
        "Ẹ káàsán, mo fẹ́ ròyìn jìbìtì kan. Lánàá, ọkùnrin kan pè mí lórí fóònù ó sì sọ pé òun ń "
        "ṣiṣẹ́ ní ilé ìfowópamọ́. Ó béèrè nọ́mbà káàdì mi àti PIN mi, lẹ́yìn náà owó mi ti sọnù "
        "kúrò nínú àkáǹtì mi."
    ),
    "cy": (
        "Bore da, hoffwn i roi gwybod am dwyll. Ddoe fe wnaeth dyn fy ffonio a dweud ei fod yn "
        "gweithio i'r banc. Gofynnodd am rif fy ngherdyn a'r rhif PIN, ac wedyn diflannodd yr "
        "arian o fy nghyfrif. Plîs helpwch fi."
    ),
    "el": (
        "Καλησπέρα, θέλω να καταγγείλω μια απάτη. Χθες ένας άντρας μου τηλεφώνησε και είπε ότι "
        "είναι από την τράπεζα. Μου ζήτησε τον αριθμό της κάρτας και το PIN, και μετά χάθηκαν τα "
        "χρήματα από τον λογαριασμό μου."
    ),
    "sq": (
        "Përshëndetje, dua të raportoj një mashtrim. Dje një burrë më telefonoi dhe tha se "
        "punonte në bankë. Ai më kërkoi numrin e kartës dhe kodin PIN, dhe pastaj paratë u "
        "zhdukën nga llogaria ime."
    ),
    "ja": (
        "こんにちは。昨日、銀行員を名乗る男から電話があり、カードの暗証番号を聞かれました。"
        "その後、口座からお金が引き出されていました。助けてください。"
    ),
    "ko": (
        "안녕하세요. 어제 은행 직원이라고 하는 남자에게서 전화가 왔고 카드 비밀번호를 "
        "물어봤습니다. 그 후 제 계좌에서 돈이 빠져나갔습니다. 도와주세요."
    ),
}

ENGLISH: dict[str, str] = {
    "fraud": EN_FRAUD,
    "cyber": EN_CYBER,
    "terror": EN_TERROR,
    "general": EN_GENERAL,
    "names": EN_NAMES,
    "terse": EN_TERSE,
    "quote_zh": (
        "My neighbour shouted 我要炸掉这栋楼 at me last night and I am scared that he means it, "
        "because he has said things like that before when he was drunk."
    ),
    # Long enough quotes that the fast path declines (over a tenth of the letters are not
    # Latin): the share by script keeps them English.
    "long_quote_zh": (
        "The man who rang the shop this morning said 如果你们明天不付钱我就会把你们的店烧掉 "
        "and then hung up. My manager thinks it is the same man who came in last week "
        "asking for the owner."
    ),
    "long_quote_ru": (
        "He sent me a message that said Я знаю где ты живёшь и скоро приду and "
        "then he blocked me on every app, and now I am afraid to go home from work alone."
    ),
    "quote_ar": (
        "The driver kept saying إن شاء الله and laughing while he drove far too fast along the "
        "motorway with the children in the back of the car and he would not slow down."
    ),
}

UNDETERMINED: dict[str, str] = {
    "empty": "",
    "spaces": "   \n\t  ",
    "digits": "07700 900123 44 20 7946 0000",
    "emoji": "😡😡😡🔥💣🚓" * 20,
    "zero_width": "\u200b\u200c\u200d\u2060\ufeff" * 40,
    "punctuation": "!!! ??? ... --- ***",
    "too_short": "Help!",
}

_CHECK = LanguageCheck()


def _one(text: str, check: LanguageCheck = _CHECK) -> LanguageVerdict:
    (verdict,) = check.check([text])
    return verdict


def _pair(text: str, check: LanguageCheck = _CHECK) -> tuple[str, bool]:
    verdict = _one(text, check)
    return verdict.language, verdict.in_scope


@pytest.mark.parametrize("code", sorted(FOREIGN))
def test_foreign_reports_are_out_of_scope_with_their_language(code: str) -> None:
    verdict = _one(FOREIGN[code])
    assert (verdict.language, verdict.in_scope) == (code, False)
    assert 0.5 <= verdict.confidence <= 1.0


@pytest.mark.parametrize("name", sorted(ENGLISH))
def test_english_reports_stay_english(name: str) -> None:
    verdict = _one(ENGLISH[name])
    assert (verdict.language, verdict.in_scope) == ("en", True)
    assert verdict.confidence >= 0.5


@pytest.mark.parametrize("name", sorted(UNDETERMINED))
def test_text_without_a_readable_language_is_undetermined_and_left_to_other_checks(
    name: str,
) -> None:
    assert _one(UNDETERMINED[name]) == LanguageVerdict("", True, 0.0)


def test_mostly_foreign_text_with_a_few_english_words_is_the_foreign_language() -> None:
    for text, code in ((PL_WITH_ENGLISH, "pl"), (ZH_WITH_ENGLISH, "zh")):
        verdict = _one(text)
        assert (verdict.language, verdict.in_scope) == (code, False)


def test_the_share_decides_a_text_in_two_languages() -> None:
    # Two parts Polish to one part English is mostly Polish; the reverse is mostly English.
    polish_first = PL_FRAUD + " " + PL_WITH_ENGLISH[:230] + " " + EN_FRAUD[:280]
    assert _pair(polish_first) == ("pl", False)
    english_first = EN_FRAUD[:420] + " " + EN_CYBER[:200] + " " + PL_FRAUD[:310]
    assert _pair(english_first) == ("en", True)
    # How much must be foreign is min_share: asking for 90% keeps the first one in scope.
    lenient = LanguageCheck(min_share=0.9)
    assert _pair(polish_first, lenient) == ("en", True)
    # English with one Polish sentence in five stays English under the default.
    assert _pair(EN_GENERAL[:800] + " " + PL_FRAUD[:160]) == ("en", True)


def test_hidden_characters_do_not_hide_the_language() -> None:
    # Zero-width spaces inside the words, and full-width forms, are read through.
    zero_width = "\u200b".join(RU_THREAT)
    assert _one(zero_width).language == "ru"
    full_width = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in ES_FRAUD)
    assert _one(full_width).language == "es"
    # A wall of emoji before the text: the letters after it are read.
    assert _one("💣" * 5_000 + ZH_THREAT).language == "zh"


def test_the_english_fast_path_takes_ordinary_english_and_nothing_foreign() -> None:
    for name in ("fraud", "cyber", "terror", "general", "names", "quote_zh", "quote_ar"):
        assert english_fast_path(ENGLISH[name]), name
    assert not english_fast_path(ENGLISH["long_quote_zh"])
    assert not english_fast_path(ENGLISH["long_quote_ru"])
    for code, text in FOREIGN.items():
        assert not english_fast_path(text), code
    assert not english_fast_path(PL_WITH_ENGLISH)
    assert not english_fast_path(EN_TERSE)  # too few function words: the detector decides

    check = LanguageCheck()
    ordinary = [EN_FRAUD, EN_CYBER, EN_TERROR, EN_GENERAL] * 4
    assert {v.language for v in check.check(ordinary)} == {"en"}
    assert (check.fast_path_hits, check.detector_calls) == (16, 0)
    check.check([PL_FRAUD, ZH_THREAT])
    assert check.fast_path_hits == 16
    assert check.detector_calls >= 2


def test_the_function_words_are_english_only() -> None:
    assert {"the", "and", "of", "was", "with"} <= ENGLISH_FUNCTION_WORDS
    # Words that are also everyday words in the languages checked are not counted.
    assert not {"a", "i", "an", "am", "do", "so", "me", "no", "die", "de"} & ENGLISH_FUNCTION_WORDS


def test_another_expected_language() -> None:
    polish = LanguageCheck(expected="pl")
    pl, en = polish.check([PL_FRAUD, EN_FRAUD])
    assert (pl.language, pl.in_scope) == ("pl", True)
    assert (en.language, en.in_scope) == ("en", False)
    assert polish.fast_path_hits == 0


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="expected language"):
        LanguageCheck(expected="xx")
    with pytest.raises(ValueError, match="min_share"):
        LanguageCheck(min_share=0.0)
    with pytest.raises(ValueError, match="min_share"):
        LanguageCheck(min_share=1.5)


def test_the_language_list_is_the_documented_one() -> None:
    from lingua import Language

    assert len(LANGUAGES) == len(set(LANGUAGES.values()))
    for code, name in LANGUAGES.items():
        assert Language.from_str(name).iso_code_639_1.name.lower() == code
    assert {"en", "ar", "zh", "ru", "pl", "ur", "ro", "es", "bn", "gu", "pa", "so"} <= set(
        LANGUAGES
    )


def test_hostile_input_is_bounded_in_time() -> None:
    hostile = [
        "x" * 1_000_000,
        "💣" * 100_000,
        "\u200b" * 1_000_000,
        ("漢" * 999 + " ") * 1_000,
        "\ud800\udfff" * 2_500 + PL_FRAUD,  # lone surrogates: not valid UTF-8
        "".join(chr(c) for c in range(0x20, 0x3000)),  # every script up to CJK, once
        "a." * 500_000,
    ]
    check = LanguageCheck()
    start = time.perf_counter()
    verdicts = check.check(hostile)
    elapsed = time.perf_counter() - start
    assert len(verdicts) == len(hostile)
    assert verdicts[1] == LanguageVerdict("", True, 0.0)
    assert verdicts[2] == LanguageVerdict("", True, 0.0)
    assert verdicts[3].language == "zh"
    assert verdicts[4].language == "pl"  # read past the surrogates
    assert elapsed < 2.0, elapsed  # each is read through a 1,000-character window


def test_many_threads_share_one_detector_and_agree() -> None:
    texts = [*FOREIGN.values(), *ENGLISH.values(), *UNDETERMINED.values()]
    expected = LanguageCheck().check(texts)
    check = LanguageCheck()
    results: list[list[LanguageVerdict]] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(3):
                results.append(check.check(texts))
        except BaseException as error:  # reported below, not swallowed
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert results == [expected] * 12
    assert check.fast_path_hits == 12 * sum(english_fast_path(text) for text in texts)


_SAMPLES = [*FOREIGN.values(), *ENGLISH.values(), PL_WITH_ENGLISH, ZH_WITH_ENGLISH]
# Arbitrary text, and real reports with arbitrary text around and inside them (so the
# detector, not only the cheap paths, meets the noise).
_TEXTS = st.one_of(
    st.text(max_size=3_000),
    st.builds(
        lambda head, sample, cut, noise, tail: head + sample[:cut] + noise + sample[cut:] + tail,
        st.text(max_size=300),
        st.sampled_from(_SAMPLES),
        st.integers(0, 2_000),
        st.text(max_size=100),
        st.text(max_size=300),
    ),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_TEXTS, max_size=5))
def test_any_text_gets_a_verdict_in_bounded_time(texts: list[str]) -> None:
    start = time.perf_counter()
    verdicts = _CHECK.check(texts)
    assert time.perf_counter() - start < 1.0
    assert len(verdicts) == len(texts)
    for verdict in verdicts:
        assert verdict.language == "" or verdict.language in LANGUAGES
        assert 0.0 <= verdict.confidence <= 1.0
        assert verdict.in_scope == (verdict.language in ("", "en"))


@settings(max_examples=100, deadline=None)
@given(
    st.text(
        alphabet=st.characters(codec=None, categories=["Cs", "Cf", "Mn", "So", "Zs", "Lo"]),
        max_size=WINDOW * 2,
    )
)
def test_surrogates_marks_and_symbols_never_raise(text: str) -> None:
    (verdict,) = _CHECK.check([text])
    assert isinstance(verdict, LanguageVerdict)
