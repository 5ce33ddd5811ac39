"""What selects events: the field table, the one filter type and emnify's ``q`` syntax."""

from herald.query.fields import FIELDS, SORT_COLUMNS, STATS_GROUPS, Field, Kind, Match
from herald.query.filter import EventFilter
from herald.query.syntax import FilterError

__all__ = [
    "FIELDS",
    "SORT_COLUMNS",
    "STATS_GROUPS",
    "EventFilter",
    "Field",
    "FilterError",
    "Kind",
    "Match",
]
