"""The one error every station raises for a failure the user can fix (bad recipe, data row, reference, token …).

The CLI prints such an error as one line (``error: <message>``, naming the file, field or row) and exits 2; any other
exception is a bug and keeps its traceback. Each station's own error class (``RecipeError``, ``DataError``,
``TrainError`` …) derives from :class:`JudgeFactoryError`, so callers can catch one station or all of them.
"""

from __future__ import annotations


class JudgeFactoryError(Exception):
    """An expected failure: the message is one line naming what to fix."""


class TrainError(JudgeFactoryError):
    """Training cannot start (bad data, missing pair set, wrong backend for this machine); raised by the SFT station
    (``train``), its loss (``loss``) and the preference stage (``preference``)."""
