"""Caller intent from one recognised utterance: fast, deterministic keyword scoring.

Owns :func:`detect_intent`: canonical text is matched against the precompiled
patterns of :mod:`voicebot.brain.intent_patterns`, weights are summed per intent,
and the answer is resolved against what the agent just asked (``expecting``) and the
moment of the call (``moment``): a bare "כן" after a slot proposal is ``accept_time``,
a time after "מתי נוח?" is ``propose_time``; "שלום" or "הלו" right after the greeting
is a ``greeting`` while later "שלום" is a ``goodbye`` and "הלו?" asks to ``repeat``;
a request to meet ("אפשר לקבוע פגישה מחר בעשר") is ``book_meeting`` at any moment
(``propose_time`` / ``accept_time`` once slots are on the table). Times come from
:mod:`voicebot.brain.timeparse`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time
from typing import Literal
from zoneinfo import ZoneInfo

from voicebot.brain.intent_model import model_intent, repair_words
from voicebot.brain.intent_patterns import (
    ASIDE_PATTERNS,
    CALLBACK_ASK_PATTERNS,
    CALLBACK_PATTERNS,
    CLOSING_SEND_YES,
    CLOSING_YES_SCORE,
    COUNTER_PATTERNS,
    DECLINE_PATTERNS,
    DOMINANT_SCORES,
    HOLD_ASKS,
    HOLD_WORDS,
    INTENT_PATTERNS,
    INTENT_PRIORITY,
    LISTENING_PATTERNS,
    OFFER_QUESTION_PATTERNS,
    OFFER_REFERENCE_PATTERNS,
    QUESTION_HAS,
    QUESTION_LEADS,
    QUESTION_TAG,
    QUESTION_WORDS,
    SEND_ITEM_PATTERNS,
    SLOT_CHOICE_PATTERNS,
    TIME_WORD_PATTERNS,
)
from voicebot.brain.normalize import fold_finals, normalize, soundalike
from voicebot.brain.time_grammar import DEFAULT_BUSINESS_HOURS
from voicebot.brain.timeparse import TimeParse, parse_hebrew_time

Expecting = Literal["none", "yes_no", "slot", "time"]
# greeting: right after the agent's greeting; pitch: while it explains the offer and asks
# its questions; slots: meeting times are on the table; closing: its last ask or goodbye.
Moment = Literal["greeting", "pitch", "slots", "closing"]
INTENTS: tuple[str, ...] = (
    "yes", "no", "interested", "not_interested", "busy_call_later", "who_is_this",
    "number_source", "price_question", "send_details", "ask_human", "remove_me",
    "wrong_number", "propose_time", "accept_time", "reject_time", "goodbye", "unclear",
    "greeting", "repeat", "book_meeting",
)  # fmt: skip
MIN_SCORE = 1.0  # below this nothing was understood
TIME_SCORE = 3.0  # weight of a parsed time towards propose_time
# Intents a time mention does not override ("תתקשר מחר בחמש" stays busy_call_later).
_KEEPS_TIME = frozenset(
    {
        "remove_me", "wrong_number", "ask_human", "busy_call_later", "price_question",
        "book_meeting", "greeting", "goodbye", "repeat",
    }
)  # fmt: skip
# Below this summed pattern weight the n-gram model is asked too ("יאללה" alone weighs 1).
MODEL_WEAK_SCORE = 2.6
MODEL_MIN_PROBABILITY = 0.5  # the model's guess is taken only at or above this probability
# While the agent's open questions wait for an answer no pattern knows ("אנחנו חמישה"), the
# model is heard only this sure: a sentence it merely resembles stays an answer.
MODEL_OPEN_ANSWER_PROBABILITY = 0.8
# ...and only for intents whose answer costs nothing if wrong: the agent repeats or explains,
# then asks the same question again (never a callback or an end mid-questions).
# An opt-out, a wrong number, a question about the number or a request for a human are never an
# answer to those questions, and the model hears them where no pattern does ("תמחקו", "די
# תורידו", "איך השגתם").
_OPEN_ANSWER_INTENTS = frozenset(
    {
        "repeat", "interested", "who_is_this", "price_question", "remove_me", "number_source",
        "wrong_number", "ask_human",
    }
)  # fmt: skip
LINE_CHECK_SCORE = 3.0  # "הלו?" after the greeting: are you there, say it again
# A whole utterance of only these words is "what?": say it again.
# ...with the discourse words LABELLING.md lists as fillers ("תשמעי מה?").
_WHAT_ONLY = frozenset(
    {"מה", "מהה", "מההה", "הא", "סליחה", "רגע", "שוב", "תשמע", "תשמעי", "תקשיב", "תקשיבי", "בקיצור"}
)
_WHAT = frozenset({"מה", "מהה", "מההה", "הא"})  # at least one of these: "רגע" alone waits
_PARDON = "סליחה"  # alone ("סליחה?") it is "pardon?"; before other words, an apology
# Below this summed weight the words said to someone else ("תגיד לו לחכות") make it unclear.
ASIDE_MAX_SCORE = 4.0
# Intents that a time mention turns into propose_time ("כן, מחר בעשר").
_YIELDS_TO_TIME = frozenset({"yes", "no", "interested", "accept_time", "reject_time"})
# Day names are not slot picks: "יום ראשון" is Sunday, not "the first one".
_DAY_NAME_RE = re.compile(
    r"(?<!\S)\S{0,2}(יומ|ימי) (ראשונ|שני|שלישי|רביאי|חמישי|שישי)(?!\S)"
    r"|(?<!\S)(ראשונ|שני)(?= ו?ב ?(בוכר|ארב|צהריימ|\d|\S*שאה"
    r"|אחת|שתיימ|שלוש|חמש|שש|שבא|שמונה|תשא|אשר))"
    r"|(?<!\S)מה (אמ|לגבי) (ראשונ|שני)(?!\S)"
)
_CLOSING_SEND_YES = frozenset(soundalike(fold_finals(word)) for word in CLOSING_SEND_YES)
# Plain answers and social formulas: any content heard at CONTENT_SCORE or more outranks them
# (LABELLING.md's tie-breaks 10-13).
_PLAIN = frozenset({"yes", "no", "greeting", "goodbye"})
CONTENT_SCORE = 3.0
_PRIORITY_RANK = {name: rank for rank, name in enumerate(INTENT_PRIORITY)}
# "Didn't hear" said with the part missed ("לא שמעתי מי זה", "לא הבנתי כמה"): the part named
# at this weight or more is what to answer (LABELLING.md: when the missed part is named,
# label the part).
NAMED_PART_SCORE = 3.0
_NAMED_PARTS = frozenset({"who_is_this", "number_source", "price_question", "interested"})
# A question about the offer no pattern knows weighs this much towards interest, under
# MODEL_WEAK_SCORE: the n-gram model still reads it ("מה המכיר של זה" asks the price)...
OFFER_QUESTION_SCORE = 2.5
QUESTION_WORD_SPAN = 3  # ...when its question word is among the first words said
# ...and no other content was heard at this weight ("מה שמך" stays who_is_this).
OTHER_CONTENT_SCORE = 2.0
# Outside the slots a time said with a yes or with interest ("כן, מחר בעשר"), or any time
# named at the close, asks to meet then (LABELLING.md: propose_time belongs to the slots).
_AGREES = frozenset({"yes", "interested"})
BOOKING_MAX_TOKENS = 6  # a yes with a time at the pitch is a booking when this short
_REFUSALS = frozenset({"no", "not_interested"})
# Words the time parser reads as a time that name none here: "כל היום" (all day long), "עכשיו"
# / "כרגע" (now: "אפשר לדבר עכשיו" answers, it proposes nothing), "בוקר טוב" (a greeting).
_NOT_A_TIME_RE = re.compile(
    r"(?<!\S)(כל היום|עכשיו|עכשו|כרגע|(בוקר|ערב|לילה|צהריים) (טוב|טובים|טב|טו|אור)"
    r"|ב?הפסקת (צהריים|צהרים|אוכל)|(עושים|עובדים|מנהלים|משתמשים)( \S+)? היום)(?!\S)"
)
# A reason given after "כי" does not change what was asked ("אולי חמישי בבוקר כי ביום שני יש
# לי ספק"): the clause before it is read first.
_BECAUSE = " כי "
# At the close, an utterance ending on a farewell formula, heard at this weight, is a goodbye.
GOODBYE_END_SCORE = 3.0
_GOODBYE_END_RE = re.compile(
    soundalike(
        fold_finals(
            r"(?<!\S)ו?(ביי|להתראות|להשתמע|יום (טוב|נעים)|ערב (טוב|נעים)|לילה טוב|שבוע טוב"
            r"|שבת שלום|כל טוב|נדבר|נתראה)( ביי| לך| לכם| תודה| רבה)*$"
        )
    )
)
_ANSWERING_RE = re.compile(r"(כן[,.]? ?)*כן\s*[?？]")
_NEGATION_RE = re.compile(r"(?<!\S)[ושה]?(לא|אינ|אל|בלי|אפ|די|מספיק)(?!\S)|(?<!\S)עזוב|מסודר")

Compiled = tuple[tuple[re.Pattern[str], float], ...]


# A word may carry "ו" (and) glued on, and "לא" also "ש" (that): "ושלא מעוניין".
_WORD_START = r"(?<!\S)ו?(?:ש(?=לא))?"


def _compile(patterns: tuple[tuple[str, float], ...]) -> Compiled:
    return tuple(
        (re.compile(_WORD_START + "(?:" + soundalike(fold_finals(source)) + r")(?!\S)"), weight)
        for source, weight in patterns
    )


def _gate(patterns: tuple[tuple[str, float], ...]) -> re.Pattern[str]:
    """One search that finds whether any of ``patterns`` matches: the word start is tried once
    per position, the alternatives only where a word starts."""
    sources = "|".join(f"(?:{soundalike(fold_finals(source))})" for source, _ in patterns)
    return re.compile(_WORD_START + "(?:" + sources + r")(?!\S)")


_COMPILED: dict[str, Compiled] = {name: _compile(p) for name, p in INTENT_PATTERNS.items()}
# One alternation of all of an intent's patterns: most intents match nothing in an utterance,
# and one search rules them out where each pattern's own search costs a pass (long sentences
# cost 2-4 ms without).
_GATES: dict[str, re.Pattern[str]] = {name: _gate(p) for name, p in INTENT_PATTERNS.items()}
_SLOT_CHOICE: Compiled = _compile(SLOT_CHOICE_PATTERNS)
_OFFER_QUESTION: Compiled = _compile(OFFER_QUESTION_PATTERNS)
_DECLINE: Compiled = _compile(DECLINE_PATTERNS)
_COUNTER: Compiled = _compile(COUNTER_PATTERNS)
_CALLBACK: Compiled = _compile(CALLBACK_PATTERNS)
_CALLBACK_ASK: Compiled = _compile(CALLBACK_ASK_PATTERNS)
# Refusals and plain answers an explicit callback ask outranks (LABELLING.md's tie-breaks).
_CALLBACK_OUTRANKS = frozenset({"not_interested", "no", "yes", "interested"})
_ASIDE: Compiled = _compile(ASIDE_PATTERNS)
# A question word among the first QUESTION_WORD_SPAN words of the key or after a clause
# opener, or a question tag at its end.
_QUESTION_OPENING = re.compile(
    rf"(?:^(?:\S+ ){{0,{QUESTION_WORD_SPAN - 1}}}"
    rf"|(?<!\S)(?:{soundalike(fold_finals(QUESTION_LEADS))}) )"
    rf"ו?(?:{soundalike(fold_finals(QUESTION_WORDS))})(?!\S)"
    rf"|(?<!\S){soundalike(fold_finals(QUESTION_TAG))}$"
    rf"|^{soundalike(fold_finals(QUESTION_HAS))} "
)
_LISTENING: Compiled = _compile(LISTENING_PATTERNS)
_SEND_ITEM: Compiled = _compile(SEND_ITEM_PATTERNS)
_TIME_WORD: Compiled = _compile(TIME_WORD_PATTERNS)
# With slots on the table a time word the parser cannot read proposes a time when it comes
# with nothing else, a plain answer, or a refusal that counters ("לא מתאים לי, אולי רביעי").
_TIME_WORD_YIELDS = frozenset({"unclear", "yes", "no", "accept_time", "reject_time"})
# A turn cut off after a prefix letter ("טוב אז ה") is a fragment unless content this strong
# was heard before the cut.
FRAGMENT_MAX_SCORE = 4.0
_HEBREW_LETTER_RE = re.compile(r"[\u05d0-\u05ea]")
_OFFER_REFERENCE: Compiled = _compile(OFFER_REFERENCE_PATTERNS)


def _any(patterns: Compiled, key: str) -> bool:
    return any(pattern.search(key) for pattern, _ in patterns)


_HOLD_WORDS = frozenset(fold_finals(word) for word in HOLD_WORDS)
_HOLD_ASKS = frozenset(fold_finals(word) for word in HOLD_ASKS)
_SECOND_WORDS = frozenset({"שנייה", "שניה"})


def holds_on(text: str, *, slots: bool = False) -> bool:
    """Whether the caller only asks the agent to wait ("רגע", "שנייה אחת", "אממ רגע רגע").

    With ``slots`` on the table "שנייה" picks the second slot, so only the other words ask
    to wait. Not an intent: LABELLING.md leaves "hold on" out of the labels and RuleBrain
    answers it before classifying, so ``detect_intent`` still reads a bare "רגע" as
    ``unclear``.
    """
    tokens = set(normalize(text).split())
    asks = _HOLD_ASKS - _SECOND_WORDS if slots else _HOLD_ASKS
    return bool(tokens & asks) and tokens <= _HOLD_WORDS


def asks_about_offer(canonical: str) -> bool:
    """Whether interest is phrased as a question or a request to explain ("מה בדיוק…", "תסביר")."""
    key = soundalike(canonical)
    return any(pattern.search(key) for pattern, _ in _OFFER_QUESTION)


@dataclass(frozen=True, slots=True)
class IntentResult:
    """The recognised intent, its score, the time mentioned (if any) and the canonical text."""

    intent: str
    score: float
    time: TimeParse | None
    text: str


def _scores(key: str) -> dict[str, float]:
    scores: dict[str, float] = {}
    for name, patterns in _COMPILED.items():
        if not _GATES[name].search(key):
            continue
        total = sum(weight for pattern, weight in patterns if pattern.search(key))
        if total:
            scores[name] = total
    return scores


def _asks_what(tokens: list[str]) -> bool:
    """Whether the whole utterance is "what?" ("מה", "רגע מה") or a bare "pardon?" ("סליחה")."""
    if not tokens:
        return False
    if all(t in _WHAT_ONLY for t in tokens) and any(t in _WHAT for t in tokens):
        return True
    return all(t == _PARDON for t in tokens)


def _best(scores: dict[str, float]) -> tuple[str, float]:
    if not scores:
        return "unclear", 0.0
    for name, threshold in DOMINANT_SCORES.items():
        if scores.get(name, 0.0) >= threshold:
            return name, scores[name]
    name = max(scores, key=lambda n: (scores[n], -_PRIORITY_RANK.get(n, len(_PRIORITY_RANK))))
    if name in _PLAIN:
        # A plain answer said with content ("כן, תסביר לי"): the content is what to act on.
        content = [n for n in scores if n not in _PLAIN and scores[n] >= CONTENT_SCORE]
        if content:
            name = min(content, key=lambda n: _PRIORITY_RANK.get(n, len(_PRIORITY_RANK)))
    elif name == "repeat":
        # "Didn't hear who you are": the part named is what to answer.
        named = [n for n in scores if n in _NAMED_PARTS and scores[n] >= NAMED_PART_SCORE]
        if named:
            name = min(named, key=lambda n: _PRIORITY_RANK.get(n, len(_PRIORITY_RANK)))
    return name, scores[name]


def _asks_about_offer(key: str, scores: dict[str, float]) -> bool:
    """Whether ``key`` is a question put to the agent that no other content pattern knows."""
    if "interested" in scores or any(
        weight >= OTHER_CONTENT_SCORE for n, weight in scores.items() if n not in _PLAIN
    ):
        return False
    return bool(_QUESTION_OPENING.search(key)) and _any(_OFFER_REFERENCE, key)


def _second_opinion(
    key: str,
    moment: Moment,
    expecting: Expecting,
    when: TimeParse | None,
    name: str,
    score: float,
) -> tuple[str, float]:
    """The n-gram model's intent where the patterns found only a weak word, or nothing.

    Taken when the model is confident and its intent can be acted on at this moment:
    a time proposal needs a parsed time, a greeting only follows the agent's greeting,
    and slot answers need proposed slots. The model's "unclear" clears a weak match.
    """
    if not key:  # fillers only ("אממ"): the model would answer from the moment alone
        return name, score
    guess = model_intent(key, moment)
    least = (
        MODEL_MIN_PROBABILITY if score > 0 or expecting != "none" else MODEL_OPEN_ANSWER_PROBABILITY
    )
    if guess.probability < least or guess.intent == name:
        return name, score
    if score == 0 and expecting == "none" and guess.intent not in _OPEN_ANSWER_INTENTS:
        return name, score
    if (
        (guess.intent == "propose_time" and when is None)
        or (guess.intent == "greeting" and moment != "greeting")
        or (guess.intent in ("accept_time", "reject_time") and expecting != "slot")
    ):
        return name, score
    if guess.intent in _REFUSALS and not _NEGATION_RE.search(key):
        # Never a refusal where nothing was negated ("מתאים לי" shares n-grams with "לא מתאים
        # לי"): the model reads letters, not the missing "לא".
        return name, score
    if name == "interested" and guess.intent in _PLAIN:
        # A question put to the agent ("כן אבל למה שאני אצטרך את זה") is not a plain answer:
        # the model may read it as another question, never as a bare yes or no.
        return name, score
    if guess.intent == "unclear":
        return "unclear", 0.0
    return guess.intent, max(score, MIN_SCORE)


def detect_intent(
    text: str,
    *,
    now: datetime,
    tz: ZoneInfo,
    expecting: Expecting = "none",
    moment: Moment = "pitch",
    business_hours: tuple[time, time] = DEFAULT_BUSINESS_HOURS,
    business_days: frozenset[int] | None = None,
) -> IntentResult:
    """Classify one caller utterance.

    ``expecting`` is what the agent just asked for, ``moment`` where the call stands.
    Where the recogniser glued, cut or misspelt words ("כמהזה עולה", "לא מעוני ין"; see
    :meth:`~voicebot.brain.intent_model.IntentModel.repair`), the mended text is read too
    and the stronger reading wins; a time is taken from the words as heard when they name
    one.
    """
    when = parse_hebrew_time(
        _NOT_A_TIME_RE.sub(" ", text),
        now=now,
        tz=tz,
        business_hours=business_hours,
        business_days=business_days,
    )
    if moment == "greeting" and _ANSWERING_RE.fullmatch(text.strip()):
        # "כן?" as the phone is answered greets (LABELLING.md); a bare "כן" answers.
        return IntentResult("greeting", LINE_CHECK_SCORE, when, normalize(text))
    heard = _detect(text, when, expecting=expecting, moment=moment)
    mended = repair_words(text)
    if mended == text:
        return heard
    if when is None:
        when = parse_hebrew_time(
            _NOT_A_TIME_RE.sub(" ", mended),
            now=now,
            tz=tz,
            business_hours=business_hours,
            business_days=business_days,
        )
    reread = _detect(mended, when, expecting=expecting, moment=moment)
    if heard.intent == "unclear" and reread.intent != "unclear":
        # A cut-off letter joined back ("בי י" -> "ביי") makes sense of what was heard.
        return reread if reread.score >= heard.score else heard
    return reread if reread.score > heard.score else heard


def _detect(
    text: str,
    when: TimeParse | None,
    *,
    expecting: Expecting,
    moment: Moment,
) -> IntentResult:
    """Classify ``text`` given the time it names (``when``)."""
    canonical = normalize(text)
    key = soundalike(canonical)
    scores = _scores(key)
    main = key.split(_BECAUSE, 1)[0] if _BECAUSE in key else ""
    if main:
        scores = _scores(main)
    tokens = canonical.split()
    if _asks_what(tokens):
        scores["repeat"] = scores.get("repeat", 0.0) + LINE_CHECK_SCORE
    if moment != "greeting" and scores.pop("greeting", 0.0) and "הלו" in tokens:
        scores["repeat"] = scores.get("repeat", 0.0) + LINE_CHECK_SCORE
    choice = 0.0
    if expecting == "slot":
        picks = _DAY_NAME_RE.sub(" ", key)
        choice = sum(w for pattern, w in _SLOT_CHOICE if pattern.search(picks))
        if choice:
            scores["accept_time"] = scores.get("accept_time", 0.0) + choice
    else:
        # Booking words without proposed slots are a plain yes / no.
        for specific, plain in (("accept_time", "yes"), ("reject_time", "no")):
            if specific in scores:
                scores[plain] = scores.get(plain, 0.0) + scores.pop(specific)
    if expecting != "slot" and _asks_about_offer(key, scores):
        scores["interested"] = OFFER_QUESTION_SCORE
    if moment in ("pitch", "closing") and _any(_LISTENING, key):
        scores["interested"] = scores.get("interested", 0.0) + CONTENT_SCORE
    name, score = _best(scores)
    if expecting == "slot" and name == "book_meeting":
        name = "accept_time" if when is None else "propose_time"
    # With slots on the table a time named in a refusal is the time refused ("מחר אני לא
    # יכול"), a time named with a pick describes the slot picked ("השנייה, של אחרי הצהריים"),
    # and being busy without asking for a call back refuses the slots ("זה לא נוח לי").
    declined = (
        expecting == "slot"
        and name in ("no", "reject_time", "busy_call_later")
        and (_any(_DECLINE, key) or (name == "busy_call_later" and when is None))
        and not _any(_COUNTER, key)
        and not (name == "busy_call_later" and _any(_CALLBACK, key))
    )
    if declined:
        name, score = "reject_time", max(score, TIME_SCORE)
    elif (
        expecting == "slot"
        and name == "busy_call_later"
        and when is not None
        and not _any(_CALLBACK_ASK, key)
    ):
        # Busy now, free then ("עדיף לי שבוע הבא, השבוע אני עמוס"; "אפשר מחר בעשר"): a time.
        name, score = "propose_time", max(score, TIME_SCORE)
    # A pick with a counter-offer and a time ("הראשון לא מתאים, אולי שישי בעשר") proposes it.
    picked = (
        expecting == "slot"
        and name == "accept_time"
        and choice > 0
        and not (when is not None and _any(_COUNTER, key))
    )
    if (
        expecting == "slot"
        and when is None
        and not picked
        and name in _TIME_WORD_YIELDS
        and _any(_TIME_WORD, key)
        and (name not in ("no", "reject_time") or _any(_COUNTER, key))
    ):
        name, score = "propose_time", max(score, TIME_SCORE)
    if (
        name in _CALLBACK_OUTRANKS
        # "תחזרי אליי בערב ונקבע": a call back asked for first, the booking after it.
        or (name == "propose_time" and "book_meeting" in scores and "busy_call_later" in scores)
    ) and _any(_CALLBACK_ASK, key):
        name, score = "busy_call_later", max(score, TIME_SCORE)
    if (
        moment == "closing"
        and name == "send_details"
        and (set(key.split()) <= _CLOSING_SEND_YES or scores.get("yes", 0.0) >= CLOSING_YES_SCORE)
        and not _any(_SEND_ITEM, key)
    ):
        # Accepting the agent's offer to send; a time said with it is when they will read.
        name, when = "yes", None
    if (
        moment == "closing"
        and name in ("yes", "no")
        and scores.get("goodbye", 0.0) >= GOODBYE_END_SCORE
        and _GOODBYE_END_RE.search(key)
    ):
        # "טוב אז סגרנו, תודה רבה, ביי": at the close an answer ending on a farewell ends.
        name = "goodbye"
    if (
        when is not None
        and not declined
        and not picked
        and name not in _KEEPS_TIME
        and (score <= TIME_SCORE or name in _YIELDS_TO_TIME)
        # A day behind us ("דיברנו אתמול") is an answer only when a time was asked for.
        and (not when.past or expecting in ("slot", "time"))
        # While the agent asks its questions a time is an answer ("בערב אין מי שיענה"), unless
        # a short yes names it ("כן, מחר בעשר זה טוב"): then it asks to meet (see below).
        and (
            moment != "pitch"
            or expecting != "none"
            or (
                _AGREES & scores.keys()
                and len(tokens) <= BOOKING_MAX_TOKENS
                and not _NEGATION_RE.search(key)
            )
        )
    ):
        name, score = "propose_time", max(score, TIME_SCORE)
    # While the agent asks its open questions a sentence no pattern knows is an answer
    # ("אנחנו חמישה"), which the model reinterprets only when it is very sure.
    if score < MODEL_WEAK_SCORE:
        name, score = _second_opinion(key, moment, expecting, when, name, score)
    if (
        score < MIN_SCORE
        or (score < ASIDE_MAX_SCORE and _any(_ASIDE, key))
        or (score < FRAGMENT_MAX_SCORE and tokens and _HEBREW_LETTER_RE.fullmatch(tokens[-1]))
        or (name in ("yes", "no") and {"yes", "no"} <= scores.keys() and "אולי" in tokens)
    ):
        # Nothing understood, words said to someone else, a turn cut after a prefix letter,
        # or a yes and a no with a maybe ("כן… לא… אולי", LABELLING.md): ask again.
        return IntentResult("unclear", score, when, canonical)
    if (
        name == "propose_time"
        and moment == "pitch"
        and expecting == "none"
        and not _AGREES & scores.keys()
    ):
        # A time in an answer to an open question ("we call back in the evening") asks for
        # nothing (LABELLING.md: propose_time belongs to the slots).
        return IntentResult("unclear", score, when, canonical)
    if (
        name == "propose_time"
        and expecting in ("none", "yes_no")
        and (moment == "closing" or (moment == "pitch" and _AGREES & scores.keys()))
    ):
        name = "book_meeting"
    elif name == "propose_time" and moment == "greeting" and expecting != "slot":
        # A time right after "is this a good time?" ("אחרי 5") says when to call back; RuleBrain
        # schedules the callback either way.
        name = "busy_call_later"
    if expecting == "slot":
        if name in ("yes", "interested"):
            name = "accept_time"
        elif name == "no":
            name = "reject_time"
    elif expecting == "time" and name == "busy_call_later" and when is None:
        name = "unclear"
    return IntentResult(name, score, when, canonical)
