"""The agent's script: who it is, what it offers, and its fixed answers, validated.

Owns :class:`AgentScript`, the only place product wording is configured; the rule
brain fills its phrases from it and an LLM brain builds its prompt from it.
Texts are written for the ear and avoid second-person gendered forms, because the
agent does not know whether it speaks to a man or a woman.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_QUALIFYING_QUESTIONS = 5
MIN_MEETING_LENGTH_MIN = 5
MAX_MEETING_LENGTH_MIN = 240


class ObjectionAnswers(BaseModel):
    """Short answers to the objections every sales call meets."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    price: str = Field(min_length=1)
    send_email: str = Field(min_length=1)
    number_source: str = Field(min_length=1)
    busy: str = Field(min_length=1)
    not_interested: str = Field(min_length=1)


class AgentScript(BaseModel):
    """Everything the agent says that is product-specific."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    agent_name: str = Field(min_length=1, max_length=40)
    company: str = Field(min_length=1, max_length=60)
    offer: str = Field(min_length=1, description="one spoken sentence: what we offer")
    meeting_purpose: str = Field(min_length=1, description="noun phrase: what the meeting is")
    meeting_length_min: int = Field(ge=MIN_MEETING_LENGTH_MIN, le=MAX_MEETING_LENGTH_MIN)
    qualifying_questions: tuple[str, ...] = Field(max_length=MAX_QUALIFYING_QUESTIONS)
    objections: ObjectionAnswers
    voicemail: str = Field(min_length=1)
    greeting: str = Field(
        min_length=1,
        description="may use {agent}, {company} and {hello} (greeting with the lead's name)",
    )

    @field_validator("qualifying_questions")
    @classmethod
    def _questions_are_questions(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for question in value:
            if not question.strip().endswith("?"):
                raise ValueError(f"qualifying question must end with '?': {question!r}")
        return value

    @field_validator("greeting")
    @classmethod
    def _greeting_placeholders(cls, value: str) -> str:
        try:
            value.format(agent="", company="", hello="")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"greeting has an unknown placeholder: {exc}") from exc
        return value

    def render_greeting(self, lead_name: str | None) -> str:
        hello = f"היי {lead_name}" if lead_name else "היי"
        return self.greeting.format(agent=self.agent_name, company=self.company, hello=hello)

    @classmethod
    def default(cls) -> AgentScript:
        """The built-in Hebrew script (a small-business customer-service product)."""
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
                "היי, כאן נועה מליד פלוס. רציתי לספר על מערכת שחוסכת לעסקים "
                "הרבה זמן בטלפון. ננסה שוב בהמשך, יום טוב!"
            ),
            greeting="{hello}, כאן {agent} מ{company}. זה זמן טוב לדבר דקה?",
        )
