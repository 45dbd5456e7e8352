"""Domain errors: what went wrong, in words a Slack user can act on."""


class UserFacingError(Exception):
    """An error whose message is shown to the person who caused it (ephemeral), not logged as a fault.

    ``field`` names the modal input block the message belongs to, when it came from a form.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field
