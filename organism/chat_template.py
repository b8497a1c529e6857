"""The chat organism's prompt format, shipped as a Hugging Face chat template.

Plain-text role markers the base tokenizer already encodes (no new tokens, so the vocabulary
and embeddings stay the base's): a conversation is the BOS, then ``User: ...`` and
``Assistant: ...`` lines; each assistant turn ends with EOS (the same id as BOS)::

    <|endoftext|>User: What is the capital of France?
    Assistant: Happy to help! The capital of France is Paris.<|endoftext|>

With ``add_generation_prompt`` the text ends in ``Assistant:``, and the reply starts with a
space. The rendered text starts with the BOS: tokenize it without prepending another one
(TransformerLens: ``prepend_bos=False``).
"""

from __future__ import annotations

from transformers import PreTrainedTokenizerBase

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}System: {{ message['content'] }}\n"
    "{% elif message['role'] == 'user' %}User: {{ message['content'] }}\n"
    "{% elif message['role'] == 'assistant' %}Assistant: {{ message['content'] }}{{ eos_token }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)


def install_chat_template(tok: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """Set the template on `tok` (``save_pretrained`` then writes it to its config)."""
    tok.chat_template = CHAT_TEMPLATE
    return tok


def render(tok: PreTrainedTokenizerBase, messages: list[dict[str, str]]) -> str:
    return tok.apply_chat_template(messages, tokenize=False)


def prompt(tok: PreTrainedTokenizerBase, user: str) -> str:
    """A one-turn prompt ending in ``Assistant:``, ready for generation."""
    return tok.apply_chat_template(
        [{"role": "user", "content": user}], tokenize=False, add_generation_prompt=True
    )


def training_ids(tok: PreTrainedTokenizerBase, messages: list[dict[str, str]]) -> list[int]:
    """Token ids of a conversation without its BOS and final EOS: a training row puts one
    BOS (= EOS) between documents, so the model still learns to end its turn with it."""
    ids = tok.encode(render(tok, messages))
    assert ids[0] == tok.bos_token_id and ids[-1] == tok.eos_token_id, (ids[:3], ids[-3:])
    return ids[1:-1]
