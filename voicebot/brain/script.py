"""The agent's script: who it is, what it offers, and its fixed answers, validated.

Owns :class:`AgentScript` (schema version :data:`SCRIPT_VERSION`), the only place product
wording is configured: the rule brain fills its phrases from it and the LLM brain builds
its prompt from it. What the agent says about the company, the offer, the price and in a
voicemail comes only from the script; a field the script leaves out is never filled from
another product: the agent says a person will follow up with the details instead
(:data:`HUMAN_FOLLOWUP_OFFER`, :data:`HUMAN_FOLLOWUP_PRICE`).

Greeting and voicemail are templates with ``{field}`` placeholders from an allow-list
(:data:`TEMPLATE_FIELDS`); no attribute access, indexing or format specs, checked on save.
Texts are written for the ear and avoid second-person gendered forms, because the agent
does not know whether it speaks to a man or a woman.
"""

from __future__ import annotations

import re
from typing import Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

SCRIPT_VERSION = 1
MAX_QUALIFYING_QUESTIONS = 5
MIN_MEETING_LENGTH_MIN = 5
MAX_MEETING_LENGTH_MIN = 240
DEFAULT_MEETING_LENGTH_MIN = 30
MAX_SENTENCE_CHARS = 500
MAX_TEMPLATE_CHARS = 500

HUMAN_FOLLOWUP_OFFER = "את כל הפרטים ייתן נציג שלנו, שיחזור אליכם בהמשך."
HUMAN_FOLLOWUP_PRICE = "לגבי המחיר, נציג שלנו יחזור אליכם עם כל הפרטים."

TEMPLATE_FIELDS: dict[str, frozenset[str]] = {
    "greeting": frozenset({"hello", "agent", "company", "lead_name"}),
    "voicemail": frozenset({"agent", "company", "lead_name"}),
    "sms_confirmation": frozenset({"name", "date", "time", "agent", "company"}),
}
"""The placeholders each template may use: ``{hello}`` is "היי" or "היי <lead name>"."""

_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
# A Hebrew prefix letter glued to a Latin word or a digit ("מYoga", "ל1.12") is written
# with a hyphen ("מ-Yoga Flow", "ל-1.12"): as Hebrew writes it, and as TTS can read it.
_PREFIX_BEFORE_FOREIGN = re.compile(r"(?<![\w\u0591-\u05c7\-])(ו?[בלמכשה])(?=[A-Za-z0-9])")


# A lead "name" no one would say: a spreadsheet formula ("=HYPERLINK(…)"), a URL, digits.
_UNSPEAKABLE_NAME_RE = re.compile(r"[=@|!(){}<>\[\]/\\:;#$%^*_~0-9]")
MAX_SPOKEN_NAME_CHARS = 40
_TITLES = frozenset({'ד"ר', "ד״ר", 'עו"ד', "עו״ד", "מר", "מר.", "גב'", "גב׳", "הרב", "פרופ'"})


def speakable_name(name: str | None) -> str | None:
    """The lead's name as the agent may say it, or None when it is no name at all (a
    formula or URL a CSV carried in, digits, a paragraph): the agent then greets without."""
    if not name:
        return None
    name = " ".join(name.split())
    if not name or len(name) > MAX_SPOKEN_NAME_CHARS or _UNSPEAKABLE_NAME_RE.search(name):
        return None
    return name


def greeting_name(name: str | None) -> str | None:
    """What "היי …" says: the first name of a full name ("דנה כהן" → "דנה"), a title with
    the family name ("ד\"ר משה כהן" → "ד\"ר כהן"); Israelis greet by first name."""
    name = speakable_name(name)
    if name is None:
        return None
    words = name.split(" ")
    if len(words) >= 2 and words[0] in _TITLES:
        return f"{words[0]} {words[-1]}"
    return words[0]


def hyphenate_prefixes(text: str) -> str:
    """ "כאן דני מYoga Flow" → "כאן דני מ-Yoga Flow"; "ל1.12" → "ל-1.12"."""
    return _PREFIX_BEFORE_FOREIGN.sub(r"\1-", text)


_FIELD_NAME = re.compile(r"[a-z_]+")


class TemplateError(ValueError):
    """A template uses a placeholder it may not, or braces that are not a placeholder."""


def template_fields(template: str, allowed: frozenset[str]) -> set[str]:
    """The placeholders ``template`` uses; raises TemplateError for anything not allowed.

    ``{{`` and ``}}`` are literal braces; ``{name}`` is a placeholder when ``name`` is in
    ``allowed``; ``{agent.x}``, ``{hello:>9}``, ``{0}`` and a lone brace are refused.
    """
    used: set[str] = set()
    for match in _PLACEHOLDER.finditer(template):
        token = match.group(0)
        if token in ("{{", "}}"):
            continue
        name = match.group(1)
        if name is None:
            raise TemplateError("a lone '{' or '}': write '{{' or '}}' for a literal brace")
        if not _FIELD_NAME.fullmatch(name) or name not in allowed:
            raise TemplateError(
                f"unknown placeholder {{{name}}}; allowed: "
                + ", ".join(f"{{{f}}}" for f in sorted(allowed))
            )
        used.add(name)
    return used


def render_template(template: str, values: dict[str, str]) -> str:
    """Fill a template checked by :func:`template_fields` (no format machinery involved)."""

    def fill(match: re.Match[str]) -> str:
        token = match.group(0)
        if token in ("{{", "}}"):
            return token[0]
        return values.get(match.group(1) or "", "")

    return hyphenate_prefixes(_PLACEHOLDER.sub(fill, template))


def _check_sentence(value: str | None) -> str | None:
    if value is not None and not value.strip():
        raise ValueError("must not be blank; leave the field out instead")
    return value.strip() if value is not None else None


class ObjectionAnswers(BaseModel):
    """Short answers to the objections every sales call meets; generic when left out."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    price: str | None = Field(
        default=None,
        max_length=MAX_SENTENCE_CHARS,
        description="what to say when asked the price; left out: a person will follow up",
    )
    send_email: str = Field(
        default="בשמחה, נציג שלנו ישלח את כל הפרטים. ובשיחה קצרה אפשר גם לשאול הכול.",
        min_length=1,
        max_length=MAX_SENTENCE_CHARS,
    )
    number_source: str = Field(
        default="המספר מופיע אצלנו ברשימת עסקים. אם לא מתאים, אפשר להסיר אותו בכל רגע.",
        min_length=1,
        max_length=MAX_SENTENCE_CHARS,
    )
    busy: str = Field(default="לגמרי מובן.", min_length=1, max_length=MAX_SENTENCE_CHARS)
    not_interested: str = Field(default="מובן לגמרי.", min_length=1, max_length=MAX_SENTENCE_CHARS)

    @field_validator("price")
    @classmethod
    def _price(cls, value: str | None) -> str | None:
        return _check_sentence(value)


class AgentScript(BaseModel):
    """Everything the agent says that is product-specific (schema version 1).

    Every field may be left out. Left-out identity and product fields (``company``,
    ``offer``, ``objections.price``, ``voicemail``) are never borrowed from another
    script: the agent leaves them unsaid or says a person will follow up.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1] = Field(default=1, description="schema version (SCRIPT_VERSION)")
    agent_name: str = Field(default="נועה", min_length=1, max_length=40)
    company: str | None = Field(default=None, min_length=1, max_length=60)
    offer: str | None = Field(
        default=None, max_length=MAX_SENTENCE_CHARS, description="one spoken sentence"
    )
    meeting_purpose: str = Field(
        default="שיחה קצרה עם נציג שלנו",
        min_length=1,
        max_length=200,
        description="noun phrase: what the meeting is",
    )
    meeting_length_min: int = Field(
        default=DEFAULT_MEETING_LENGTH_MIN, ge=MIN_MEETING_LENGTH_MIN, le=MAX_MEETING_LENGTH_MIN
    )
    qualifying_questions: tuple[str, ...] = Field(default=(), max_length=MAX_QUALIFYING_QUESTIONS)
    objections: ObjectionAnswers = Field(default_factory=ObjectionAnswers)
    voicemail: str | None = Field(
        default=None,
        max_length=MAX_TEMPLATE_CHARS,
        description="template; may use {agent}, {company}, {lead_name}",
    )
    greeting: str | None = Field(
        default=None,
        max_length=MAX_TEMPLATE_CHARS,
        description="template; may use {hello} (היי + the lead's name), {agent}, {company}, "
        "{lead_name}",
    )
    sms_confirmation: str | None = Field(
        default=None,
        max_length=MAX_TEMPLATE_CHARS,
        description="the meeting confirmation SMS; template with {name}, {date} "
        "(יום שלישי, 1.12.2026), {time} (10:30), {agent}, {company}",
    )

    @field_validator("offer")
    @classmethod
    def _offer(cls, value: str | None) -> str | None:
        return _check_sentence(value)

    @field_validator("qualifying_questions")
    @classmethod
    def _questions_are_questions(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for question in value:
            if not question.strip().endswith("?"):
                raise ValueError(f"qualifying question must end with '?': {question!r}")
        return value

    @field_validator("greeting", "voicemail", "sms_confirmation")
    @classmethod
    def _template(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        if not value.strip():
            raise ValueError("must not be blank; leave the field out instead")
        try:
            template_fields(value, TEMPLATE_FIELDS[info.field_name or "greeting"])
        except TemplateError as exc:
            raise ValueError(str(exc)) from exc
        return value

    @model_validator(mode="after")
    def _company_placeholder_needs_company(self) -> Self:
        for name in ("greeting", "voicemail", "sms_confirmation"):
            template = getattr(self, name)
            if template is None or self.company is not None:
                continue
            if "company" in template_fields(template, TEMPLATE_FIELDS[name]):
                raise ValueError(f"{name} uses {{company}} but the script has no company")
        return self

    # What the agent says, for the brains and the preview.

    def _values(self, lead_name: str | None) -> dict[str, str]:
        first = greeting_name(lead_name)
        return {
            "hello": f"היי {first}" if first else "היי",
            "agent": self.agent_name,
            "company": self.company or "",
            "lead_name": speakable_name(lead_name) or "",
        }

    def introduction(self) -> str:
        """ "כאן נועה מליד פלוס." — or only the name when the script has no company."""
        if self.company:
            return hyphenate_prefixes(f"כאן {self.agent_name} מ{self.company}.")
        return f"כאן {self.agent_name}."

    def render_greeting(self, lead_name: str | None) -> str:
        template = self.greeting or (
            "{hello}, כאן {agent} מ{company}. זה זמן טוב לדבר דקה?"
            if self.company
            else "{hello}, כאן {agent}. זה זמן טוב לדבר דקה?"
        )
        return render_template(template, self._values(lead_name))

    def offer_text(self) -> str:
        """The offer, or that a person will give the details."""
        return self.offer or HUMAN_FOLLOWUP_OFFER

    def price_answer(self) -> str:
        """The price answer, or that a person will follow up with it."""
        return self.objections.price or HUMAN_FOLLOWUP_PRICE

    def render_voicemail(self, lead_name: str | None = None) -> str:
        """The voicemail message; without one, who called and that we will try again."""
        if self.voicemail:
            return render_template(self.voicemail, self._values(lead_name))
        first = greeting_name(lead_name)
        hello = f"היי {first}, " if first else "היי, "
        return f"{hello}{self.introduction()} ננסה לתפוס אתכם שוב בהמשך. יום טוב!"

    def render_sms_confirmation(self, *, name: str | None, date: str, time: str) -> str:
        """The meeting confirmation text (``date`` and ``time`` already written the
        Israeli way); without a name, the greeting has none."""
        template = self.sms_confirmation or (
            "שלום {name}, נקבעה לנו פגישה ל{date} בשעה {time}. מחכים לשיחה! {agent}"
            + (", {company}" if self.company else "")
        )
        values = {**self._values(name), "name": name or "", "date": date, "time": time}
        text = render_template(template, values)
        return re.sub(r" +", " ", text.replace(" ,", ",")).strip()

    @classmethod
    def default(cls) -> AgentScript:
        """The built-in Hebrew script (a small-business customer-service product), used
        when no campaign is involved and for a campaign whose script is empty."""
        return cls(
            agent_name="נועה",
            company="ליד פלוס",
            offer=(
                "יש לנו מערכת שעונה ללקוחות של העסק בטלפון ובוואטסאפ, "
                "וקובעת להם תורים לבד, גם בערב ובסוף השבוע."
            ),
            meeting_purpose="שיחת היכרות קצרה עם יועץ שלנו",
            meeting_length_min=30,
            qualifying_questions=(
                "כמה אנשים עובדים אצלכם בעסק?",
                "ואיך מטפלים היום בטלפונים שלא נענים?",
            ),
            objections=ObjectionAnswers(
                price=(
                    "המחיר מתחיל ב-₪199 לחודש ותלוי בגודל העסק. בשיחה עם היועץ מקבלים הצעה מדויקת."
                ),
                send_email=(
                    "בשמחה, נשלח פרטים בוואטסאפ. "
                    "אבל בשיחה קצרה עם יועץ רואים בדיוק איך זה עובד אצלכם."
                ),
                number_source=(
                    "המספר מופיע אצלנו ברשימת עסקים. אם לא מתאים, אפשר להסיר אותו בכל רגע."
                ),
                busy="לגמרי מובן.",
                not_interested=("מובן לגמרי. רק שווה לדעת שרוב העסקים חוסכים ככה כמה שעות בשבוע."),
            ),
            voicemail=(
                "היי, כאן {agent} מ{company}. רציתי לספר על מערכת שחוסכת לעסקים "
                "הרבה זמן בטלפון. ננסה שוב בהמשך, יום טוב!"
            ),
            greeting="{hello}, כאן {agent} מ{company}. זה זמן טוב לדבר דקה?",
        )
