"""mmdshot from prompt-pipeline frameworks.

- :mod:`mmdshot_integrations.langchain`: ``MmdshotExampleSelector`` (asks a running mmdshot)
  and ``LocalMmdExampleSelector`` (the ``selector`` library in-process), both drop-ins for
  LangChain's ``SemanticSimilarityExampleSelector``.
- :mod:`mmdshot_integrations.dspy`: ``mmdshot_demos``, ``dspy.Example`` demonstrations for a
  query.

The remote paths speak to the service through the generated client (``mmdshot_client``,
``clients/python``); importing this package imports neither LangChain nor DSPy.
"""
