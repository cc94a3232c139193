"""Shape a served answer as the request asks (inference param ``output``): records, columns, or totals.

MLflow's scoring server writes a DataFrame answer as one JSON object per row with a pure-Python
JSON encoder; a 9-target job model answers 9 rows of ~50 numbers per request row, so for large
requests the encoding is most of the time. The default stays the frame (``records``); a client
that wants a large answer sooner picks a shape that costs less to encode:

- ``records`` (default): the frame, one JSON object per (request row, target);
- ``columns``: the same columns and numbers as one JSON list per column, ``{"input_row": [...], ...}``
  (about half the encoding time: no key repeated per row);
- ``totals``: records without the op columns (request row, target, batch latency, predicted total
  and every other non-op column): a tenth of the numbers.
"""

from __future__ import annotations

import pandas as pd

from profcast.errors import ProfcastError

OUTPUT_PARAM = "output"  # the inference param that picks the shape
OUTPUT_SHAPES = ("records", "columns", "totals")


def requested_shape(params: dict | None) -> str:
    """The shape a request asked for (``records`` when none); a one-line error naming the accepted ones."""
    shape = (params or {}).get(OUTPUT_PARAM) or OUTPUT_SHAPES[0]
    if shape not in OUTPUT_SHAPES:
        raise ProfcastError(
            f"param '{OUTPUT_PARAM}' is {shape!r}; accepted: {', '.join(OUTPUT_SHAPES)} (default records)"
        )
    return shape


def shaped_answer(answer: pd.DataFrame, shape: str, op_columns: list[str]):
    """``answer`` in ``shape``: the frame itself, a dict of column lists, or the frame without ``op_columns``."""
    if shape == "columns":
        # Python lists, not arrays: MLflow's encoder would convert each array element by element.
        return {column: answer[column].tolist() for column in answer.columns}
    if shape == "totals":
        return answer.drop(columns=op_columns)
    return answer
