"""The LangChain selectors inside a real ``FewShotPromptTemplate`` and the DSPy helper, against
the running service (and, for the in-process selector, the library)."""

from __future__ import annotations

import dspy
import pytest
from langchain_core.prompts import FewShotPromptTemplate, PromptTemplate
from mmdshot_client import Client
from mmdshot_client.api.pools import pools_create
from mmdshot_client.models import PoolCreate

from mmdshot_integrations.dspy import mmdshot_demos
from mmdshot_integrations.langchain import LocalMmdExampleSelector, MmdshotExampleSelector
from mmdshot_integrations.remote import ExampleKeys, MmdshotError
from selector import HashingEmbedder
from tests.app.conftest import make_examples

KEYS = ExampleKeys("question", "answer", label_key="label")
QUERY = "review of boats: the boats felt positive"


def qa_examples(count: int) -> list[dict[str, str]]:
    """``make_examples`` as LangChain examples: ``question``, ``answer``, ``label``, ``topic``."""
    return [
        {
            "question": example["input"],
            "answer": example["output"],
            "label": example["label"],
            "topic": example["metadata"]["topic"],
        }
        for example in make_examples(count)
    ]


def few_shot(selector: MmdshotExampleSelector | LocalMmdExampleSelector) -> FewShotPromptTemplate:
    return FewShotPromptTemplate(
        example_selector=selector,
        example_prompt=PromptTemplate.from_template("Q: {question}\nA: {answer}"),
        prefix="Classify the review.",
        suffix="Q: {question}\nA:",
        input_variables=["question"],
    )


@pytest.fixture
def remote(api: Client, request: pytest.FixtureRequest) -> MmdshotExampleSelector:
    """A selector over a fresh pool filled through ``add_example``."""
    pool = request.node.name
    assert pools_create.sync(client=api, body=PoolCreate(name=pool)) is not None
    selector = MmdshotExampleSelector(client=api, pool=pool, k=3, keys=KEYS)
    for example in qa_examples(12):
        selector.add_example(example)
    return selector


def test_remote_selector_in_few_shot_prompt(remote: MmdshotExampleSelector) -> None:
    chosen = remote.select_examples({"question": QUERY})
    assert len(chosen) == 3
    pool = {example["question"]: example for example in qa_examples(12)}
    assert all(example == pool[example["question"]] for example in chosen)  # metadata travels

    prompt = few_shot(remote).format(question=QUERY)
    blocks = [f"Q: {example['question']}\nA: {example['answer']}" for example in chosen]
    expected = "\n\n".join(["Classify the review.", *blocks, f"Q: {QUERY}\nA:"])
    assert prompt == expected


def test_remote_selector_options_and_errors(remote: MmdshotExampleSelector) -> None:
    duplicate = qa_examples(1)[0]
    assert remote.add_example(duplicate) == remote.add_example({**duplicate})

    remote.options = {"constraints": {"label_quotas": {"negative": {"min": 2}}}}
    chosen = remote.select_examples({"question": QUERY})
    assert sum(example["label"] == "negative" for example in chosen) >= 2

    remote.k = 50
    with pytest.raises(MmdshotError) as refused:
        remote.select_examples({"question": QUERY})
    assert (refused.value.status, refused.value.type) == (422, "invalid_input")


def test_local_selector_in_few_shot_prompt() -> None:
    selector = LocalMmdExampleSelector(
        examples=qa_examples(30), embedder=HashingEmbedder(), k=4, keys=KEYS
    )
    near = {"question": QUERY, "answer": "positive", "label": "positive", "topic": "boats"}
    selector.add_example(near)
    chosen = selector.select_examples({"question": QUERY})
    assert len(chosen) == 4 and chosen[-1] == near  # the most relevant comes last
    prompt = few_shot(selector).format(question=QUERY)
    assert prompt.count("\nA: ") == 4
    assert prompt.endswith(f"Q: {QUERY}\nA: positive\n\nQ: {QUERY}\nA:")


def test_dspy_demos(remote: MmdshotExampleSelector, api: Client) -> None:
    demos = mmdshot_demos(api, remote.pool, QUERY, k=3, keys=KEYS)
    assert len(demos) == 3
    assert all(isinstance(demo, dspy.Example) for demo in demos)
    assert all(set(demo.inputs().keys()) == {"question"} for demo in demos)
    assert [demo.answer for demo in demos] == [
        example["answer"] for example in remote.select_examples({"question": QUERY})
    ]

    student = dspy.Predict("question -> answer")
    program = dspy.LabeledFewShot(k=3).compile(student, trainset=demos, sample=False)
    assert program.demos == demos
