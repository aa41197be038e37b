"""Intent rules that hold for a kind of utterance, not for listed phrasings (LABELLING.md)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from voicebot.brain.intents import Expecting, Moment, detect_intent

TZ = ZoneInfo("Asia/Jerusalem")
NOW = datetime(2025, 3, 11, 9, 30, tzinfo=TZ)  # a Tuesday morning
EXPECTING: dict[str, Expecting] = {
    "greeting": "yes_no",
    "pitch": "none",
    "slots": "slot",
    "closing": "yes_no",
}


def _intent(text: str, moment: Moment) -> str:
    return detect_intent(text, now=NOW, tz=TZ, expecting=EXPECTING[moment], moment=moment).intent


@pytest.mark.parametrize(
    ("text", "moment"),
    [
        ("ומה זה אמור לתת לי בעצם", "pitch"),
        ("רגע ואיך אתם משלבים את זה אצלי", "pitch"),
        ("כן אבל למה שאני אצטרך את זה", "pitch"),
        ("אוקיי ובמה זה שונה ממה שיש לי", "closing"),
        ("איזה סוג של עסקים עובדים איתכם", "greeting"),
    ],
)
def test_a_question_about_the_offer_is_interest(text: str, moment: Moment) -> None:
    """A question put to the agent about the offer, in words no pattern lists, is interest."""
    assert _intent(text, moment) == "interested"


@pytest.mark.parametrize(
    ("text", "moment", "expected"),
    [
        ("מה השעה עכשיו", "pitch", "unclear"),  # a question not put to the agent
        ("מה שמך", "greeting", "who_is_this"),  # a question some other label owns
        ("מה אמרת", "pitch", "repeat"),
    ],
)
def test_other_questions_keep_their_label(text: str, moment: Moment, expected: str) -> None:
    """Questions that are not about the offer are not taken for interest."""
    assert _intent(text, moment) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("סליחה לא שמעתי מי את", "who_is_this"),
        ("לא הבנתי כמה זה יעלה לי", "price_question"),
        ("לא קלטתי מאיפה יש לכם את המספר שלי", "number_source"),
        ("לא שמעתי תחזרי על זה", "repeat"),
    ],
)
def test_didnt_hear_with_the_part_named_answers_the_part(text: str, expected: str) -> None:
    """A didn't-hear naming what was missed is labelled by the part missed."""
    assert _intent(text, "pitch") == expected


@pytest.mark.parametrize(
    ("text", "moment", "expected"),
    [
        ("כן מחר בעשר זה טוב", "pitch", "book_meeting"),
        ("אולי ביום חמישי בבוקר", "closing", "book_meeting"),
        ("אולי ביום חמישי בבוקר", "slots", "propose_time"),
        ("אנחנו חוזרים ללקוחות בערב", "pitch", "unclear"),  # an answer, not a request
        ("תתקשרי אליי ביום חמישי", "closing", "busy_call_later"),
    ],
)
def test_a_time_outside_the_slots_asks_to_meet(text: str, moment: Moment, expected: str) -> None:
    """Outside the slots a time with a yes, or any time at the close, asks for a meeting; a
    time inside an answer at the pitch is an answer (propose_time belongs to the slots)."""
    assert _intent(text, moment) == expected


@pytest.mark.parametrize(
    "text",
    ["תודה לא", "אני אוותר הפעם", "לא בקטע של זה", "אין לנו עניין", "אנחנו מרוצים ממה שיש"],
)
def test_declining_the_offer_is_not_a_plain_no(text: str) -> None:
    """Declining the offer in other words is not_interested, not a bare no."""
    assert _intent(text, "pitch") == "not_interested"


@pytest.mark.parametrize(
    ("text", "moment", "expected"),
    [
        ("כן תשלחי לי למייל", "closing", "yes"),  # accepting the agent's offer to send
        ("תשלחו לי הצעת מחיר במייל", "pitch", "send_details"),
        ("יאללה תמשיך אני איתך", "pitch", "interested"),
        ("כן אני שומעת", "greeting", "greeting"),
        ("אוקיי אז אני ב", "pitch", "unclear"),  # cut off after a prefix letter
        ("כן לא אולי", "pitch", "unclear"),  # a yes and a no with a maybe
    ],
)
def test_kinds_read_by_moment(text: str, moment: Moment, expected: str) -> None:
    """A send verb with a yes at the close accepts the agent's offer; "I'm listening" after the
    greeting asks to go on; a turn cut after a prefix letter, or yes-no-maybe, is unclear."""
    assert _intent(text, moment) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("אולי חמישי", "propose_time"),
        ("רק בערבים", "propose_time"),
        ("לא טוב לי אולי בסוף השבוע", "propose_time"),
        ("השני מתאים", "accept_time"),
        ("חמישי לא מתאים לי", "reject_time"),
    ],
)
def test_time_words_the_parser_misses_still_propose(text: str, expected: str) -> None:
    """With slots on the table, a weekday or part of the week the time parser does not read
    proposes a time, unless it is refused without a counter-offer."""
    assert _intent(text, "slots") == expected


@pytest.mark.parametrize(
    ("text", "moment", "expected"),
    [
        ("אחרי ארבע", "greeting", "busy_call_later"),  # when to call back, not a slot
        ("די תורידו", "pitch", "remove_me"),  # no pattern: the model hears the opt-out
        ("אולי ביום חמישי בבוקר כי ביום שני יש לי ספק", "slots", "propose_time"),
        ("טוב אז סגרנו תודה רבה ביי", "closing", "goodbye"),
        ("לא הולך ביום הזה אני בחתונה כל היום", "slots", "reject_time"),
        ("בוקר טוב כן אפשר לדבר עכשיו", "greeting", "yes"),
    ],
)
def test_reasons_farewells_and_non_times(text: str, moment: Moment, expected: str) -> None:
    """A reason after "כי" does not relabel the ask, an answer ending on a farewell at the close
    is a goodbye, "כל היום"/"עכשיו" name no time, a time at the greeting asks for a callback,
    and an opt-out the model is sure of is heard while the agent asks its questions."""
    assert _intent(text, moment) == expected


@pytest.mark.parametrize(
    ("text", "moment", "expected"),
    [
        ("כאילו יאללה סבבה בי י", "closing", "goodbye"),  # a last letter cut off the word
        ("אה השני מתאים ל י", "slots", "accept_time"),
        ("אולי ביום חמישי בבוק ר", "slots", "propose_time"),
        ("עוד לו", "pitch", "no"),  # "לו" heard for "לא" inside the answer
        ("בקיצור לו מעוניין תודה", "pitch", "not_interested"),
        ("אני רשום בלו להתקשר", "greeting", "remove_me"),
        ("תשמעי מה", "pitch", "repeat"),  # a discourse word around "מה?"
        ("ראשון בעשר וחצי", "slots", "propose_time"),  # a weekday with an hour, not a pick
        ("תחזרי אליי בערב ונקבע", "slots", "busy_call_later"),
    ],
)
def test_recogniser_noise_and_weekdays(text: str, moment: Moment, expected: str) -> None:
    """A letter split off a word's end is joined back, "לו" after "עוד"/"ממש"/"זה" or after
    a discourse word is "לא", "ראשון"/"שני" before an hour name a day, and a call back asked
    for before "ונקבע" schedules the callback."""
    assert _intent(text, moment) == expected


@pytest.mark.parametrize(
    ("text", "moment", "expected"),
    [
        ("כמה זה לכל סניף של מכון הכושר", "pitch", "price_question"),  # "מכון" is no machine
        ("כן אנחנו מנהלים את הלקוחות באקסל", "pitch", "yes"),  # manages, not a manager
        ("יוסי תעביר את הצלחות לשולחן שש", "pitch", "unclear"),  # passing plates, not a call
        ("אין לי כוח לבוטים תעבירי לבן אדם", "pitch", "ask_human"),
        ("קיבלתם את המספר מאינסטגרם של הסטודיו", "pitch", "number_source"),
        ("זה דרך דפי זהב או מה", "pitch", "number_source"),
        ("מי הפנה אתכם למסעדה שלנו", "pitch", "number_source"),
        ("קיבלתי את המספר הזה חדש הוא היה של מישהו אחר", "greeting", "wrong_number"),
        ("אני סתם שכן שלהם זה לא הטלפון של הגן", "pitch", "wrong_number"),
        ("אם תתקשרו עוד פעם אני מתלונן", "pitch", "remove_me"),
        ("סליחה הגריל פה רועש תחזרי", "slots", "repeat"),
        ("זה בדיוק בשעות הקבלה בקליניקה", "slots", "reject_time"),
        ("אם תבואו למסעדה אחרי ארבע נשב על זה", "pitch", "book_meeting"),
        ("בסדר דברי אני בהפסקת צהריים", "greeting", "yes"),
        ("זה לפי עסקה או קבוע", "pitch", "price_question"),
        ("אוקיי תשלחי לי גם את המחירים במייל תודה", "closing", "send_details"),
        ("מה הכתובת של האתר", "pitch", "send_details"),
        ("לא מכיר", "pitch", "no"),
        ("אין בעיה", "pitch", "yes"),
    ],
)
def test_trade_owner_phrasings(text: str, moment: Moment, expected: str) -> None:
    """Business words that look like intent words ("מכון", "מנהלים", "תעביר את הצלחות"), a
    directory or a referral as the number's source, a complaint threat, noise where the caller
    is, a slot in working hours, a pricing model, items to send at the close."""
    assert _intent(text, moment) == expected


@pytest.mark.parametrize(
    ("text", "moment", "expected"),
    [
        ("אחותי תוותר עלינו", "pitch", "not_interested"),
        ("תשכח מזה אחי", "pitch", "not_interested"),
        ("מה פתאום אין לנו את זה", "pitch", "no"),
        ("חד משמעי כן", "pitch", "yes"),
        ("תן לי צלצול בערב", "pitch", "busy_call_later"),
        ("זה לא רגע מתאים", "greeting", "busy_call_later"),
        ("מאיפה אתה יודע מה הטלפון שלי", "pitch", "number_source"),
        ("תשכח את המספר שלי", "pitch", "remove_me"),
        ("עוד שיחה אחת ואני פותח תביעה", "pitch", "remove_me"),
        ("תן לי מישהו חי בבקשה", "pitch", "ask_human"),
        ("תעביר לי את המידע בווטסאפ", "pitch", "send_details"),
        ("יש לכם משהו לקרוא באתר", "pitch", "send_details"),
        ("אז מה הנזק בחודש", "pitch", "price_question"),
        ("אתה נשמע לי רחוק", "pitch", "repeat"),
        ("שיועץ יבוא אלינו למשרד", "pitch", "book_meeting"),
        ("לא משנה לי באמת", "slots", "accept_time"),
        ("זה הטלפון הפרטי שלי", "pitch", "wrong_number"),
        ("ערב טוב כן אפשר לדבר", "greeting", "yes"),
        ("מעולם לא שמעתי על החברה הזאת טעות", "greeting", "wrong_number"),
        ("אני תפוס בשעה הזאת", "slots", "reject_time"),
        ("אני לא מעוניינת שתחזרו אליי שוב", "greeting", "remove_me"),
        ("לא אני לא משתמשת במייל", "closing", "no"),
        ("וגם את הטלפון של המנהל תשלחי", "closing", "send_details"),
        ("לא קלטתי מה בדיוק המערכת עושה", "pitch", "interested"),
        ("כן רוב הפניות מגיעות דרך פייסבוק", "pitch", "yes"),
        ("כן אנחנו מקבלים המון הודעות בווטסאפ", "pitch", "yes"),
        ("השעות האלה לא טובות מה עם ראשון", "slots", "propose_time"),
        ("מה לגבי שני", "slots", "propose_time"),
        ("מה עם השני", "slots", "accept_time"),
        ("אוקיי תגיד מה יש", "greeting", "interested"),
        ("לא אנחנו לא עובדים עם ספק חיצוני", "pitch", "no"),
    ],
)
def test_idioms_and_hidden_polarity(text: str, moment: Moment, expected: str) -> None:
    """Slang, idioms and polarity hidden in a word ("תוותרי", "מה הנזק") carry their intent."""
    assert _intent(text, moment) == expected


@pytest.mark.parametrize("text", ["שכחתי את המספר של הלקוח", "אה שכחתי מזה לגמרי"])
def test_i_forgot_is_not_forget_me(text: str) -> None:
    """I forgot ("שכחתי") is no "שכחי מזה/מהמספר": neither an opt-out nor a refusal."""
    assert _intent(text, "pitch") not in ("remove_me", "not_interested")
