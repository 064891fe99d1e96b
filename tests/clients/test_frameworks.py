"""The LangChain selectors inside a real ``FewShotPromptTemplate`` and the DSPy helper, against
the running service (and, for the in-process selector, the library)."""

from __future__ import annotations

from typing import Any

import dspy
import pytest
from langchain_core.prompts import ChatPromptTemplate, FewShotPromptTemplate, PromptTemplate
from mmdshot_client import AuthenticatedClient
from mmdshot_client.api.pools import pools_create
from mmdshot_client.models import PoolCreate

from mmdshot_integrations.dspy import mmdshot_demos
from mmdshot_integrations.langchain import (
    LocalMmdExampleSelector,
    MmdshotExampleSelector,
    few_shot_chat_messages,
)
from mmdshot_integrations.remote import ExampleKeys, MmdshotError, as_client
from selector import HashingEmbedder
from tests.app.conftest import Server, make_examples
from tests.clients.conftest import READ_KEY, WRITE_KEY

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


def service_selection(server: Server, pool: str, **body: Any) -> list[dict[str, Any]]:
    """The examples the service itself chooses (over plain HTTP), in prompt order."""
    with server.client(READ_KEY) as http:
        answer = http.post(f"/v1/pools/{pool}/select", json=body)
    assert answer.status_code == 200, answer.text
    chosen: list[dict[str, Any]] = answer.json()["examples"]
    return chosen


def as_qa(example: dict[str, Any]) -> dict[str, Any]:
    """A service example as the ``KEYS`` dict the adapters return."""
    return {
        "question": example["input"],
        "answer": example["output"],
        "label": example["label"],
        **example["metadata"],
    }


@pytest.fixture
def remote(api: AuthenticatedClient, request: pytest.FixtureRequest) -> MmdshotExampleSelector:
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


def test_remote_selector_options_and_errors(remote: MmdshotExampleSelector, server: Server) -> None:
    with server.client(READ_KEY) as http:
        stored = http.get(f"/v1/pools/{remote.pool}/examples").json()["examples"]
    first = qa_examples(1)[0]
    (original,) = [example["id"] for example in stored if example["input"] == first["question"]]
    # A content duplicate is not stored again: its id is the stored example's.
    assert remote.add_example({**first, "topic": "other"}) == original
    with server.client(READ_KEY) as http:
        assert http.get(f"/v1/pools/{remote.pool}").json()["size"] == 12
    fresh = {"question": "a brand new review", "answer": "neutral", "label": "neutral"}
    assert remote.add_example(fresh) not in {example["id"] for example in stored}

    plain = remote.select_examples({"question": QUERY})
    assert plain == [as_qa(e) for e in service_selection(server, remote.pool, query=QUERY, k=3)]
    assert sum(example["label"] == "negative" for example in plain) < 2  # so the quota matters
    remote.options = {"constraints": {"label_quotas": {"negative": {"min": 2}}}}
    chosen = remote.select_examples({"question": QUERY})
    assert sum(example["label"] == "negative" for example in chosen) >= 2
    options = {"query": QUERY, "k": 3, **remote.options}
    assert chosen == [as_qa(e) for e in service_selection(server, remote.pool, **options)]

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


def test_dspy_demos(remote: MmdshotExampleSelector, server: Server) -> None:
    demos = mmdshot_demos(server.url, remote.pool, QUERY, k=3, keys=KEYS, api_key=READ_KEY)
    expected = [as_qa(e) for e in service_selection(server, remote.pool, query=QUERY, k=3)]
    assert [demo.toDict() for demo in demos] == expected  # the service's choice, in its order
    assert all(isinstance(demo, dspy.Example) for demo in demos)
    assert all(demo.inputs().toDict() == {"question": demo.question} for demo in demos)
    assert all(demo.labels().toDict().keys() == {"answer", "label", "topic"} for demo in demos)

    boats = {"constraints": {"metadata_filter": {"topic": "boats"}}}
    filtered = mmdshot_demos(
        server.url, remote.pool, "x", k=2, keys=KEYS, options=boats, api_key=READ_KEY
    )
    assert [demo.topic for demo in filtered] == ["boats", "boats"]


def test_adapters_send_the_api_key(
    remote: MmdshotExampleSelector, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MMDSHOT_API_KEY", READ_KEY)  # the default key
    reader = MmdshotExampleSelector(client=server.url, pool=remote.pool, k=2, keys=KEYS)
    assert len(reader.select_examples({"question": QUERY})) == 2
    assert READ_KEY not in repr(reader)
    with pytest.raises(MmdshotError) as denied:
        reader.add_example(qa_examples(1)[0])
    assert (denied.value.status, denied.value.type) == (403, "forbidden")
    assert len(mmdshot_demos(server.url, remote.pool, QUERY, k=2)) == 2

    writer = MmdshotExampleSelector(
        client=server.url, api_key=WRITE_KEY, pool=remote.pool, keys=KEYS
    )
    assert writer.add_example({"question": "written with the write key", "answer": "a"})

    monkeypatch.delenv("MMDSHOT_API_KEY")
    anonymous = MmdshotExampleSelector(client=server.url, pool=remote.pool, k=2)
    with pytest.raises(MmdshotError) as refused:
        anonymous.select_examples({"question": QUERY})
    assert (refused.value.status, refused.value.type) == (401, "unauthorized")
    wrong = MmdshotExampleSelector(client=server.url, api_key="not-a-key", pool=remote.pool)
    with pytest.raises(MmdshotError, match="401 unauthorized: unknown API key"):
        wrong.select_examples({"question": QUERY})

    with pytest.raises(ValueError, match="api_key goes with a base URL"):
        as_client(remote._api, READ_KEY)


def chat_prompt(selector: MmdshotExampleSelector | LocalMmdExampleSelector) -> ChatPromptTemplate:
    return ChatPromptTemplate.from_messages(
        [
            ("system", "Classify the review. {hint}"),
            few_shot_chat_messages(selector),
            ("human", "{question}"),
        ]
    )


def test_selectors_in_a_few_shot_chat_prompt(
    remote: MmdshotExampleSelector, server: Server
) -> None:
    local = LocalMmdExampleSelector(
        examples=qa_examples(30), embedder=HashingEmbedder(), k=4, keys=KEYS
    )
    for selector in (remote, local):
        selector.query_keys = ["question"]  # the system hint is no part of the query
        messages = chat_prompt(selector).format_messages(question=QUERY, hint="Be brief.")
        chosen = selector.select_examples({"question": QUERY})
        expected = [("system", "Classify the review. Be brief.")]
        for example in chosen:
            expected += [("human", example["question"]), ("ai", example["answer"])]
        expected.append(("human", QUERY))
        assert [(m.type, m.content) for m in messages] == expected
    # The remote selector's pairs are the service's own choice, in its prompt order.
    service = service_selection(server, remote.pool, query=QUERY, k=3)
    remote_messages = chat_prompt(remote).format_messages(question=QUERY, hint="")
    assert [m.content for m in remote_messages[1:-1:2]] == [e["input"] for e in service]


def test_adapters_put_a_prefix_first(remote: MmdshotExampleSelector, server: Server) -> None:
    """With a prefix, the LangChain selector and the DSPy helper return the prefix's examples
    first (the same on every call), then the slice the service chose around them."""
    with server.client(WRITE_KEY) as http:
        body = {"name": "shared", "k": 2, "target": {"texts": [QUERY, "trains"]}}
        made = http.post(f"/v1/pools/{remote.pool}/prefixes", json=body)
    assert made.status_code == 201, made.text
    head = [
        {"question": e["input"], "answer": e["output"], "label": e["label"]}
        for e in made.json()["examples"]
    ]
    prefixed = MmdshotExampleSelector(
        client=remote.client, pool=remote.pool, k=2, keys=KEYS, prefix="shared"
    )
    for query in (QUERY, "a review of trains"):
        chosen = prefixed.select_examples({"question": query})
        service = service_selection(server, remote.pool, query=query, k=2, prefix="shared")
        assert chosen == [*head, *(as_qa(e) for e in service)]
    prompt = few_shot(prefixed).format(question=QUERY)
    blocks = [f"Q: {example['question']}\nA: {example['answer']}" for example in head]
    assert prompt.startswith("\n\n".join(["Classify the review.", *blocks]))
    demos = mmdshot_demos(
        server.url, remote.pool, QUERY, k=2, keys=KEYS, api_key=READ_KEY, prefix="shared"
    )
    assert [demo.toDict() for demo in demos][:2] == head and len(demos) == 4
