"""One error type for user mistakes.

Everything a user can fix (a bad config value, a missing run or stage, a corrupt store file, a model or data set
that is not available offline, tokenizers that do not match, a bad row in an input file) raises a subclass of
`S2DLabError`, at the place where the value is checked, with a one-line message that names the value and the fix.
The CLI prints such errors as one line (`s2dlab: ...`) and exits with status 2; anything else is a bug and keeps
its traceback.
"""

from __future__ import annotations


class S2DLabError(Exception):
    """A mistake the user can fix; the message is one line naming the bad value and the fix."""


class InputError(S2DLabError, ValueError):
    """A bad value in something the user passed: an argument, a file's row, a folder's contents."""


class MissingError(S2DLabError, FileNotFoundError):
    """Something the user named is not there: a file, a folder, a run, a stage's model."""
