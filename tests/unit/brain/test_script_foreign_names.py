"""A company written in English or starting with a digit keeps Hebrew's hyphen after the
prefix letter in every line rendered from the script ("מYoga Flow" was spoken and texted)."""

from __future__ import annotations

from voicebot.brain.script import AgentScript, hyphenate_prefixes
from voicebot.brain.speech_text import to_spoken

YOGA = AgentScript(agent_name="דני", company="Yoga Flow", offer="סטודיו ליוגה בתל אביב.")


def test_greeting_voicemail_and_introduction_hyphenate() -> None:
    """Greeting, default voicemail and introduction say "מ-Yoga Flow", as Hebrew writes it."""
    assert YOGA.render_greeting("מיכל") == "היי מיכל, כאן דני מ-Yoga Flow. זה זמן טוב לדבר דקה?"
    assert YOGA.render_voicemail().startswith("היי, כאן דני מ-Yoga Flow.")
    assert YOGA.introduction() == "כאן דני מ-Yoga Flow."


def test_sms_date_after_prefix_is_hyphenated() -> None:
    """The default SMS template's "ל{date}" reads "ל-1.12", not "ל1.12"."""
    text = YOGA.render_sms_confirmation(name="מיכל", date="1.12", time="10:00")
    assert text.startswith("שלום מיכל, נקבעה לנו פגישה ל-1.12 בשעה 10:00.")


def test_company_starting_with_a_digit_is_spoken_after_the_prefix() -> None:
    """ "מ3D" was glued; with the hyphen the normaliser says the digit as a word."""
    script = AgentScript(company="3D הדפסות")
    assert script.introduction() == "כאן נועה מ-3D הדפסות."
    assert to_spoken(script.introduction()) == "כאן נועה משלוש D הדפסות."


def test_hebrew_words_are_left_alone() -> None:
    """Only a lone prefix letter before Latin or digits gets a hyphen; words and an existing
    hyphen are untouched."""
    for text in ("כאן נועה מליד פלוס.", "ב-Zoom", "שלום John", "ממש CRM", "וב-10:00"):
        assert hyphenate_prefixes(text) == text
    assert hyphenate_prefixes("ובZoom") == "וב-Zoom"


def test_greeting_says_the_first_name() -> None:
    """Israelis greet by first name: "היי דנה" for "דנה כהן" (was "היי דנה כהן"), a title
    keeps the family name ("היי ד\"ר כהן")."""
    script = AgentScript.default()
    assert script.render_greeting("דנה כהן").startswith("היי דנה, כאן נועה")
    assert script.render_greeting('ד"ר משה כהן').startswith('היי ד"ר כהן, כאן נועה')


def test_formula_name_from_a_csv_is_not_spoken_nor_prompted() -> None:
    """A name cell a spreadsheet would run ("=HYPERLINK(…)", stored as written by the CSV
    import) is not said in the greeting nor put in the LLM's prompt."""
    from voicebot.brain.base import LeadContext
    from voicebot.brain.prompt import _lead

    formula = '=HYPERLINK("http://evil.example","דנה")'
    script = AgentScript.default()
    assert script.render_greeting(formula) == "היי, כאן נועה מליד פלוס. זה זמן טוב לדבר דקה?"
    assert "HYPERLINK" not in _lead(LeadContext(lead_id=1, name=formula, company="מספרה"))
