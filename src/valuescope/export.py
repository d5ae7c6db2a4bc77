"""Per-answer export, the public home of `answers_table` and `export_answers`.

The table is part of a run's record, so it is built in the run core
(`valuescope.runcore.answers`); this module keeps the names users import.
"""

from valuescope.runcore.answers import (
    ANSWERS_FILE,
    COLUMNS,
    FORMATS,
    answers_table,
    export_answers,
    write_answers,
)

__all__ = ["ANSWERS_FILE", "COLUMNS", "FORMATS", "answers_table", "export_answers", "write_answers"]
