"""Every action, block and callback ID the app uses, in one place."""

from enum import StrEnum


class Action(StrEnum):
    FEEDBACK_ACTED_ON = "feedback_acted_on"
    WIN_STORY = "win_story"
    OPEN_IN_CRM = "open_in_crm"
    SLA_CONTACTED = "sla_contacted"
    SLA_RECYCLE = "sla_recycle"
    SCORECARD_ROWS = "scorecard_rows"
    AGENDA_COVERED = "agenda_covered"
    AGENDA_REMOVE = "agenda_remove"


class View(StrEnum):
    FEEDBACK_NEW = "feedback_new"
    FEEDBACK_ACTED_ON = "feedback_acted_on"
    WIN_STORY = "win_story"
    SLA_RECYCLE = "sla_recycle"


class Block(StrEnum):
    CATEGORY = "category"
    ACCOUNT = "account"
    TEXT = "text"
    STRENGTH = "strength"
    NOTE = "note"
    STORY = "story"
    REASON = "reason"


class Field(StrEnum):
    """The action_id of the input element inside each input block."""

    VALUE = "value"
