"""The one exception type for user mistakes (bad input, missing cache, wrong split name).

The CLI prints its message as a single line and exits 1, without a traceback. The message
names the offending file or value and says what to do about it.
"""


class UserError(Exception):
    """A problem the user can fix; str(err) is one line: what is wrong, and the fix."""
