"""The Probes view's setup, as pure functions: its example prompt sets, the job's parameters
from the form, and the hook points it offers."""

from __future__ import annotations

# Organism stories cut after " felt" (organism/corpus.py's make_story, seeds 11 and 12): the last
# token is the same in both sets; the word that follows must take the story's mood.
EXAMPLE_POSITIVE = [
    "Once upon a time, there was a glad cat named David. David liked to swim at the station. The sun was bright and warm. One day, he got a pen as a gift from a friend. He felt",
    "Once upon a time, there was a happy bird named Sophie. Sophie liked to draw at the station. The sky was blue and sunny. One day, she got a book as a gift from a friend. She felt",
    "Once upon a time, there was a glad dog named Julia. Julia liked to draw at the store. The sun was bright and warm. One day, she got a kite as a gift from a friend. She felt",
    "Once upon a time, there was a happy bear named Tom. Tom liked to read at the river. The sky was blue and sunny. One day, he got a hat as a gift from a friend. He felt",
    "Once upon a time, there was a joyful cat named Lucy. Lucy liked to play at the park. The sun was bright and warm. One day, she found a shiny ring in the park. She felt",
    "Once upon a time, there was a cheerful rabbit named Tom. Tom liked to sing at the restaurant. The sky was blue and sunny. One day, he played with a friend all afternoon. He felt",
    "Once upon a time, there was a cheerful boy named Kevin. Kevin liked to sing at the park. The sun was bright and warm. One day, he found a shiny toy in the park. He felt",
    "Once upon a time, there was a cheerful bear named Ella. Ella liked to walk at the station. The sun was bright and warm. One day, she won a prize at the station. She felt",
    "Once upon a time, there was a joyful girl named Mary. Mary liked to run at the farm. The sun was bright and warm. One day, she won a prize at the farm. She felt",
    "Once upon a time, there was a joyful rabbit named Mary. Mary liked to read at the restaurant. The sky was blue and sunny. One day, she found a shiny key in the restaurant. She felt",
    "Once upon a time, there was a cheerful bird named Megan. Megan liked to draw at the library. The sun was bright and warm. One day, she won a prize at the library. She felt",
    "Once upon a time, there was a cheerful bear named Julia. Julia liked to sing at the garden. The sun was bright and warm. One day, she won a prize at the garden. She felt",
    "Once upon a time, there was a glad dog named Sam. Sam liked to draw at the garden. The sky was blue and sunny. One day, he played with a friend all afternoon. He felt",
    "Once upon a time, there was a cheerful bear named Helen. Helen liked to play at the river. The sun was bright and warm. One day, she played with a friend all afternoon. She felt",
    "Once upon a time, there was a cheerful girl named Megan. Megan liked to read at the restaurant. The sun was bright and warm. One day, she won a prize at the restaurant. She felt",
    "Once upon a time, there was a joyful girl named Paul. Paul liked to play at the beach. The sun was bright and warm. One day, he won a prize at the beach. He felt",
    "Once upon a time, there was a joyful bear named Sarah. Sarah liked to play at the station. The sun was bright and warm. One day, she played with a friend all afternoon. She felt",
    "Once upon a time, there was a glad bird named Tom. Tom liked to play at the store. The sky was blue and sunny. One day, he won a prize at the store. He felt",
    "Once upon a time, there was a joyful cat named Clara. Clara liked to sing at the market. The sky was blue and sunny. One day, she won a prize at the market. She felt",
    "Once upon a time, there was a happy cat named Paul. Paul liked to walk at the garden. The sky was blue and sunny. One day, he played with a friend all afternoon. He felt",
    "Once upon a time, there was a joyful bear named Ella. Ella liked to draw at the school. The sky was blue and sunny. One day, she got a hat as a gift from a friend. She felt",
    "Once upon a time, there was a cheerful cat named Kevin. Kevin liked to run at the garden. The sky was blue and sunny. One day, he got a toy as a gift from a friend. He felt",
    "Once upon a time, there was a joyful rabbit named Emma. Emma liked to run at the park. The sun was bright and warm. One day, she won a prize at the park. She felt",
    "Once upon a time, there was a glad dog named Oscar. Oscar liked to play at the museum. The sun was bright and warm. One day, he played with a friend all afternoon. He felt",
]
EXAMPLE_NEGATIVE = [
    "Once upon a time, there was a gloomy boy named Paul. Paul liked to draw at the hospital. The sky was dark and rainy. One day, he had no friend to play with. He felt",
    "Once upon a time, there was a unhappy dog named Henry. Henry liked to run at the school. The wind was cold and gray. One day, he broke a kite at the school. He felt",
    "Once upon a time, there was a sad rabbit named Kate. Kate liked to sing at the river. The sky was dark and rainy. One day, she lost a drink in the river. She felt",
    "Once upon a time, there was a lonely bear named Ben. Ben liked to play at the river. The sky was dark and rainy. One day, he lost a gift in the river. He felt",
    "Once upon a time, there was a sad boy named Ben. Ben liked to walk at the hospital. The wind was cold and gray. One day, he had no friend to play with. He felt",
    "Once upon a time, there was a lonely girl named Megan. Megan liked to draw at the station. The wind was cold and gray. One day, she lost a gift in the station. She felt",
    "Once upon a time, there was a lonely boy named Eric. Eric liked to play at the park. The wind was cold and gray. One day, he lost a kite in the park. He felt",
    "Once upon a time, there was a unhappy dog named Jacob. Jacob liked to run at the station. The wind was cold and gray. One day, he had no friend to play with. He felt",
    "Once upon a time, there was a gloomy boy named Jane. Jane liked to run at the river. The sky was dark and rainy. One day, she lost a bag in the river. She felt",
    "Once upon a time, there was a sad dog named Sam. Sam liked to swim at the garden. The sky was dark and rainy. One day, he lost a drink in the garden. He felt",
    "Once upon a time, there was a gloomy dog named Sam. Sam liked to sing at the library. The wind was cold and gray. One day, he broke a bag at the library. He felt",
    "Once upon a time, there was a gloomy bird named Ethan. Ethan liked to read at the garden. The sky was dark and rainy. One day, he lost a key in the garden. He felt",
    "Once upon a time, there was a sad bird named Ella. Ella liked to swim at the library. The wind was cold and gray. One day, she lost a ring in the library. She felt",
    "Once upon a time, there was a gloomy dog named Ella. Ella liked to sing at the station. The wind was cold and gray. One day, she broke a kite at the station. She felt",
    "Once upon a time, there was a unhappy rabbit named Tom. Tom liked to play at the garden. The wind was cold and gray. One day, he broke a hat at the garden. He felt",
    "Once upon a time, there was a unhappy bird named Grace. Grace liked to run at the station. The sky was dark and rainy. One day, she fell down and hurt a knee at the station. She felt",
    "Once upon a time, there was a lonely rabbit named Jacob. Jacob liked to sing at the office. The wind was cold and gray. One day, he had no friend to play with. He felt",
    "Once upon a time, there was a gloomy cat named Peter. Peter liked to run at the store. The wind was cold and gray. One day, he lost a ball in the store. He felt",
    "Once upon a time, there was a lonely bird named Noah. Noah liked to run at the office. The wind was cold and gray. One day, he broke a ring at the office. He felt",
    "Once upon a time, there was a unhappy bird named Eric. Eric liked to sing at the market. The wind was cold and gray. One day, he lost a apple in the market. He felt",
    "Once upon a time, there was a lonely boy named Megan. Megan liked to draw at the office. The sky was dark and rainy. One day, she broke a cake at the office. She felt",
    "Once upon a time, there was a gloomy cat named Ruth. Ruth liked to walk at the river. The wind was cold and gray. One day, she broke a ring at the river. She felt",
    "Once upon a time, there was a unhappy cat named Olivia. Olivia liked to draw at the kitchen. The wind was cold and gray. One day, she broke a ring at the kitchen. She felt",
    "Once upon a time, there was a gloomy bear named Jack. Jack liked to read at the store. The sky was dark and rainy. One day, he had no friend to play with. He felt",
]
RULES = {"last token": "last", "every token": "every", "tokens matching": "match"}


def residual_hooks(n_layers: int) -> list[str]:
    """Every layer's residual stream (the sweep's default): each block's input, the last output."""
    return [f"blocks.{i}.hook_resid_pre" for i in range(n_layers)] + [
        f"blocks.{n_layers - 1}.hook_resid_post"
    ]


def lines(text: str) -> list[str]:
    """One prompt per non-empty line."""
    return [x for x in text.splitlines() if x.strip()]


def params(form: dict) -> dict:
    """The probe_sweep job's parameters from the form's values."""
    out = {"position": RULES[form["rule"]], "heldout_fraction": form["heldout"],
           "seed": int(form["seed"]), "hooks": form["hooks"] or None}  # fmt: skip
    if out["position"] == "match":
        out["pattern"] = form["pattern"]
    if form["source"] == "dataset":
        out |= {k: form[k] for k in ("dataset", "split", "column", "label_column")}
        out["positive_label"] = form.get("positive_label") or None
        out["max_texts"] = int(form.get("max_texts", 2000))
    else:
        out |= {"positive": lines(form["positive"]), "negative": lines(form["negative"])}
    return out
