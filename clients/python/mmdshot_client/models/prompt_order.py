from typing import Literal

PromptOrder = Literal["relevance_last", "selection"]

PROMPT_ORDER_VALUES: set[PromptOrder] = {
    "relevance_last",
    "selection",
}


def check_prompt_order(value: str) -> PromptOrder:
    if value in PROMPT_ORDER_VALUES:
        return value
    raise TypeError(f"Unexpected value {value!r}. Expected one of {PROMPT_ORDER_VALUES!r}")
