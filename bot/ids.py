"""Every action, block and callback ID the app uses, in one place."""

from enum import StrEnum


class Action(StrEnum):
    FEEDBACK_ACTED_ON = "feedback_acted_on"
    WIN_STORY = "win_story"
    OPEN_IN_CRM = "open_in_crm"


class View(StrEnum):
    FEEDBACK_NEW = "feedback_new"
    FEEDBACK_ACTED_ON = "feedback_acted_on"
    WIN_STORY = "win_story"


class Block(StrEnum):
    CATEGORY = "category"
    ACCOUNT = "account"
    TEXT = "text"
    STRENGTH = "strength"
    NOTE = "note"
    STORY = "story"


class Field(StrEnum):
    """The action_id of the input element inside each input block."""

    VALUE = "value"
