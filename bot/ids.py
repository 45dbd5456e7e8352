"""Every action, block and callback ID the app uses, in one place."""

from enum import StrEnum


class Action(StrEnum):
    FEEDBACK_ACTED_ON = "feedback_acted_on"


class View(StrEnum):
    FEEDBACK_NEW = "feedback_new"
    FEEDBACK_ACTED_ON = "feedback_acted_on"


class Block(StrEnum):
    CATEGORY = "category"
    ACCOUNT = "account"
    TEXT = "text"
    STRENGTH = "strength"
    NOTE = "note"


class Field(StrEnum):
    """The action_id of the input element inside each input block."""

    VALUE = "value"
