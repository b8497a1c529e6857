"""SAE latents: which latents fire where on the prompt, the strongest ones, one latent in full,
latent search, and top-activating examples computed over a text file."""

from __future__ import annotations

from urllib.parse import urlencode

import streamlit as st

from components import compare, job_box, shell, snippets, state, widgets
from components import latent_figures as lf
from components.latent_panel import show_latent_panel
from components.safe import md
from engine.client import EngineRequestError

link = shell.engine_link()
client = link.client
prompt = state.get("prompt")
st.title("SAE latents")
compare.not_here(
    "this page shows model A's SAEs on model A; the latents whose activation changes "
    "between A and B are on the Diff page (A's SAE applied to both)."
)


def attach_form(open_: bool) -> None:
    with st.expander("Attach an SAE (SAELens release + id, or a local SAELens directory)",
                     expanded=open_):  # fmt: skip
        a, b, c = st.columns([2, 2, 1])
        release = a.text_input("SAELens release", placeholder="gpt2-small-res-jb")
        sae_id = b.text_input("SAE id", placeholder="blocks.8.hook_resid_pre")
        path = st.text_input("…or a local SAELens directory", placeholder="/path/to/sae")
        if c.button("Attach", disabled=not (path or (release and sae_id))):
            with st.spinner("Loading the SAE…"):
                info = shell.call(client.attach_sae, release or None, sae_id or None, path or None)
            state.put(sae=info.id, latent=None)
            st.rerun()


saes = shell.call(client.saes)
attach_form(open_=not saes)
if not saes:
    st.info(st.session_state["capabilities"].features["saes"].reason)
    st.stop()
by_id = {s.id: s for s in saes}
if state.get("sae") not in by_id:
    state.put(sae=saes[0].id, latent=None)
sae = widgets.bound("sae", st.selectbox, "SAE", options=list(by_id)) or saes[0].id
info = by_id[sae]
st.caption(
    f"attached to **{info.hook_name}** · {info.d_sae:,} latents × d_in {info.d_in} · "
    f"{info.architecture} · {info.origin}"
    + (f" ({info.release} / {info.sae_id})" if info.release else "")
    + (" · shipped examples and labels" if info.has_examples else " · no shipped examples")
)
exsets = info.example_sets
if state.get("exset") not in exsets:
    state.put(exset=None)
if exsets:
    widgets.bound("exset", st.selectbox, "Examples and labels from", options=[None, *exsets],
                  format_func=lambda s: s or "shipped")  # fmt: skip
exset = state.get("exset")

res = shell.call(client.analyze, "sae_latents", prompt, sae=sae, top_k=5, n_strongest=20)
tokens = [t.text for t in res.tokens]
labels = {s.index: s.label for s in res.strongest}
latent = state.get("latent")
if latent is None or not 0 <= latent < info.d_sae:
    latent = res.strongest[0].index if res.strongest else 0
    state.put(latent=latent)

fig = lf.token_latent_figure(res, labels)
order = fig.layout.meta["latents"] if fig.layout.meta else []
widgets.figure(
    fig, name="sae_token_latents", params={"sae": sae},
    on_click=lambda p: {"latent": order[int(p["y"])]} if "y" in p and order else {},
    bundle=snippets.sae_token_latents(res, order) if order else None,
)  # fmt: skip
st.caption("Click a row to open that latent below.")

left, right = st.columns([3, 2], gap="large")
with left:
    st.markdown("**Strongest latents on this prompt** (special tokens left out)")
    table = lf.strongest_table(res)
    picked = st.dataframe(table, hide_index=True, on_select="rerun", selection_mode="single-row",
                          key="strongest")  # fmt: skip
    rows = picked.selection.rows if picked else []
    if rows and int(table.iloc[rows[0]]["latent"]) != latent:
        state.put(latent=int(table.iloc[rows[0]]["latent"]))
        st.rerun()
with right:
    st.markdown("**Find latents**")
    by = widgets.bound("lsearchby", st.segmented_control, "Search by",
                       options=["label", "token"]) or "label"  # fmt: skip
    query = widgets.bound("lsearch", st.text_input, "Label words, or a token (e.g. ' Paris')")
    if query:
        try:
            found = client.analyze("latent_search", prompt, sae=sae, query=query, by=by,
                                   examples=exset, limit=15)  # fmt: skip
            st.caption(f"over {md(found.over)}")
            for hit in found.hits:
                if st.button(f"#{hit.index} {md(hit.label[:60])} ({hit.score:.3g})",
                             key=f"hit_{hit.index}", type="tertiary"):  # fmt: skip
                    state.put(latent=hit.index)
                    st.rerun()
            if not found.hits:
                st.caption("No latent matches.")
        except EngineRequestError as e:
            st.caption(md(e.message))

st.divider()
picked_latent = st.number_input("Latent", 0, info.d_sae - 1, value=latent, step=1)
if picked_latent != latent:
    state.put(latent=int(picked_latent))
    st.rerun()
detail = shell.call(client.analyze, "latent_detail", prompt, sae=sae, index=latent,
                    examples=exset)  # fmt: skip
steer = "steering?" + urlencode({"add_latent": f"sae:{sae}:{latent}", "prompt": prompt})
st.link_button("Steer with this latent", steer, icon=":material/tune:")
show_latent_panel(detail, key="sae_latent",
                  neuronpedia=lambda: client.neuronpedia_label(sae, latent))  # fmt: skip

st.subheader("Top-activating examples over your texts")
st.caption(
    "Runs this SAE over every text of a file (one per line, or .jsonl with a 'text' field) or a "
    "dataset (a Hugging Face name, a `save_to_disk` directory, or a local parquet/csv/json "
    "file) on the engine's machine, as a job with progress; the result is cached on disk and "
    "selectable above. Local files must lie in the engine's data directories (setting "
    "`data_dirs`, or `--data-dir` when starting the engine)."
)
kind = st.segmented_control("Texts from", ["Text file", "Dataset"], default="Text file",
                            key="ex_kind")  # fmt: skip
c1, c2 = st.columns([4, 1])
if kind == "Dataset":
    d1, d2, d3 = c1.columns([3, 1, 1])
    source = {
        "dataset": d1.text_input("Dataset", key="ex_dataset", placeholder="NeelNanda/pile-10k"),
        "split": d2.text_input("Split", "train", key="ex_split"),
        "column": d3.text_input("Column", "text", key="ex_column"),
    }
    ready = bool(source["dataset"])
else:
    source = {"path": c1.text_input("Text file on the engine's machine", key="ex_path")}
    ready = bool(source["path"])
n = c2.number_input("Max texts", 1, 1_000_000, 2000, key="ex_max")
if st.button("Compute examples", disabled=not ready):
    params = {"sae": sae, **source, "max_texts": n}
    job_box.start(client, "examples_job", "latent_examples", params)
if out := job_box.follow(client, "examples_job", "the examples job"):
    if out.job.status == "done":
        state.put(exset=out.result["examples"])
        st.rerun()
    st.error(out.job.error or out.job.message)
