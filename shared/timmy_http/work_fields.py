"""The fields of a request for work (its text, model and output cap) and the view of the free
tier's decision, defined once for the routes that take or answer them: the estimate's, a job's and a
session's request. Kept apart from `timmy_http.estimate` so the jobs and sessions handlers import
only these, not the estimate and donation routes' models.

`request` and `model` are checked by the domain (timmy.pricing: `empty_request`, `unknown_model`
with the known names); their schemas say the same. `max_output_tokens` is bounded here by the
largest any model allows; the chosen model's own cap is the domain's (413, it depends on the model).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field, StrictInt, StrictStr, WithJsonSchema

from timmy.pricing.catalogue import default_catalogue
from timmy_http.fields import INTEGRAL

MODEL_NAMES = default_catalogue().names()
OUTPUT_TOKENS_MAX = max(model.max_output_tokens for model in default_catalogue().models.values())
REQUEST_DESCRIPTION = "the text of the work to price: not blank; over the byte limit or the model's context window is a 413"
REQUEST_SCHEMA = {"type": "string", "minLength": 1, "pattern": r"\S", "description": REQUEST_DESCRIPTION}
MODEL_SCHEMA = {"type": "string", "enum": MODEL_NAMES, "description": "a catalogue model; the default model when absent"}
MAX_OUTPUT_TOKENS_DESCRIPTION = f"completion cap, 1 … the model's maximum (at most {OUTPUT_TOKENS_MAX}; over the model's own a 413)"
RequestText = Annotated[StrictStr, WithJsonSchema(REQUEST_SCHEMA)]
ModelName = Annotated[StrictStr, WithJsonSchema(MODEL_SCHEMA)]
MaxOutputTokens = Annotated[StrictInt, Field(ge=1, le=OUTPUT_TOKENS_MAX), INTEGRAL]


class FreeTierView(BaseModel):
    serve: str = Field(description="free | partial | gate")
    absorb_sats: int
    charge_sats: int
