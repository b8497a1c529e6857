"""Diff: where model B (or prompt B) differs from A on the prompt: per-token KL, the changed
predictions, the residual difference and its lens, the latents that changed; and, over a text
set, the activation-difference lens and the latents' mean changes (jobs)."""

from __future__ import annotations

import streamlit as st

from components import compare, diff_panels, diff_snippets, job_box, shell, state, widgets, windows
from components import diff_figures as dfig
from components.safe import md
from engine.schemas.diff_latents import AdiffLensResult, LatentDiffSetResult

MAX_TEXTS = 64  # texts of a text-set job (the built-in neutral set has 64)
link = shell.engine_link()
client = link.client
prompt = state.get("prompt")
st.title("Diff")
cmp = compare.current()
if not cmp.active:
    st.info(
        "Nothing to compare yet: in the sidebar's **Compare** panel, pick model B (another model "
        "directory or name, e.g. `assets/organism-chat`) or prompt B (the same model on another "
        "prompt of as many tokens).",
        icon=":material/compare_arrows:",
    )
    st.stop()
labels = diff_panels.labels(cmp)
st.caption(f"{md(labels[0])} · {md(labels[1])}" + (
    f" · prompt B: {md(cmp.prompt_b)!s}" if cmp.prompt_b else ""))  # fmt: skip

tokens, pos, _ = diff_panels.tokens_panel(client, prompt, cmp, windows.DIFF)
st.subheader("Residual stream difference")
diff_panels.resid_panel(client, prompt, cmp, tokens, pos, windows.DIFF)

st.subheader("Latents that changed")
caps = st.session_state["capabilities"]
saes = shell.call(client.saes)
if "diff_latents" not in caps.analyses:
    st.info("This engine has no latent diffs (analysis diff_latents).")
    st.stop()
if not saes:
    st.info("No SAE is attached to model A: attach one on the SAE latents page.")
    st.stop()
ids = [s.id for s in saes]
sae = state.get("sae") if state.get("sae") in ids else ids[0]
sae = st.selectbox("SAE (model A's, applied to both sides' activations at its hook)", ids,
                   index=ids.index(sae), key="w_diff_sae")  # fmt: skip
lat = shell.call(compare.pair, client, "diff_latents", prompt, cmp, sae=sae, top_k=8,
                 n_strongest=10)  # fmt: skip
changed = dfig.strongest_rows(lat)
if changed:
    widgets.figure(
        dfig.latent_changes_figure(
            changed, title="Latents whose activation changed most on this prompt",
            subtitle=f"{sae} · each at the token where |B − A| is largest",
        ),
        name="diff_latents", params={"sae": sae},
        bundle=diff_snippets.latents(lat, changed, diff_panels.side_code(client, cmp)),
    )  # fmt: skip
    diff_panels.latent_rows(client, prompt, sae, changed)
else:
    st.caption("No latent's activation changed on this prompt.")
here = dfig.latent_rows_at(lat, pos)
if here:
    st.markdown(f"**At pos {pos}** (the selected token): " + " · ".join(
        f"#{r['index']} {r['a']:.2f} → {r['b']:.2f}" for r in here[:6]))  # fmt: skip

st.subheader("Over a text set")
if not {"adiff_lens", "latent_diff_set"} <= set(caps.jobs):
    st.info("This engine has no text-set diff jobs (adiff_lens, latent_diff_set).")
    st.stop()
if not cmp.model_b:
    st.caption("The text-set jobs compare two models; prompt B is one prompt.")
    st.stop()
st.caption(
    "The activation-difference lens (mean resid_B − resid_A of the first tokens of neutral "
    "texts, read through the unembedding and the SAE's decoder directions) and each latent's "
    "mean activation and firing frequency change: jobs on the engine, with progress and "
    "cancel, cached by their inputs."
)
texts = st.text_input("Texts (a file in the engine's data directories; empty: the built-in "
                      "neutral set)", key="w_diff_texts")  # fmt: skip
control = st.text_input("Control texts for the latent changes (a file; empty: none): latents are "
                        "then ranked by their change on the texts minus their change on these",
                        key="w_diff_control")  # fmt: skip
o1, o2, o3 = st.columns([2, 2, 1.4])
chat = o1.toggle("Chat template", key="w_diff_chat",
                 help="Wrap each text as a user turn in the chat template (model B's, else A's), "
                 "ending where the assistant's reply starts: to compare models on requests.")  # fmt: skip
where = o2.segmented_control(
    "Latent changes read", ["all", "last"], default="all", key="w_diff_where",
    format_func={"all": "every token", "last": "last token"}.get,
    help="Every content token of each text, or its last token only (with the chat template: "
    "where the reply starts).",
) or "all"  # fmt: skip
positions = o3.number_input("Lens positions", 1, 32, 5, key="w_diff_positions",
                            help="The activation-difference lens reads the first tokens of each "
                            "text after the BOS (Minder et al.: the first few).")  # fmt: skip
source = {"model_b": compare.SLOT_B, "max_texts": MAX_TEXTS, "chat": chat,
          **({"path": texts} if texts else {})}  # fmt: skip
# the bundles' snippets recompute over the built-in texts (a file is read on the engine's side)
builtin = None if texts else diff_snippets.builtin_texts(MAX_TEXTS)
j1, j2 = st.columns(2)
if j1.button("Activation-difference lens", icon=":material/play_arrow:"):
    job_box.start(client, "adiff_job", "adiff_lens",
                  {**source, "top_k": 10, "positions": int(positions)})  # fmt: skip
if j2.button("Latent changes over the set", icon=":material/play_arrow:"):
    job_box.start(client, "ldiff_job", "latent_diff_set", {**source, "sae": sae, "n_top": 10,
                  "where": where,
                  **({"control": {"path": control, "max_texts": MAX_TEXTS}} if control else {})})  # fmt: skip
for key, what, typed in (("adiff_job", "the activation-difference lens", AdiffLensResult),
                         ("ldiff_job", "the latent changes job", LatentDiffSetResult)):  # fmt: skip
    if out := job_box.follow(client, key, what):
        if (
            out.job.status == "done"
        ):  # the job's answer, as client.adiff_lens/latent_diff_set give it
            st.session_state[f"{key}:result"] = typed.model_validate(out.result)
        else:
            st.error(out.job.error or out.job.message)
if adiff := st.session_state.get("adiff_job:result"):
    rows, top = dfig.adiff_rows(adiff)
    widgets.figure(
        dfig.layer_tokens_figure(
            rows, top, title="Activation-difference lens",
            subtitle=f"mean resid_B − resid_A over the first {adiff.positions} tokens of "
            f"{adiff.over}" + (" (as chat requests)" if adiff.chat else "")
            + ", through B's unembedding",
        ),
        name="diff_adiff_lens", params={"texts": adiff.over},
        bundle=diff_snippets.adiff_lens(adiff, builtin, diff_panels.side_code(client, cmp))
        if builtin else None,
    )  # fmt: skip
    st.caption(md(adiff.normalisation))
    for reading in adiff.mean.saes:
        st.caption(
            f"{md(reading.sae)}: latents best aligned with the mean difference: "
            + ", ".join(
                f"#{x.index} {md(x.label[:40])} ({x.cosine:.2f})" for x in reading.latents[:6]
            )  # fmt: skip
        )
if ldiff := st.session_state.get("ldiff_job:result"):
    rows_set = dfig.set_rows(ldiff)
    widgets.figure(
        dfig.latent_changes_figure(
            rows_set, title="Latents whose mean activation changed most over the texts",
            subtitle=f"{ldiff.sae.id} · {ldiff.over}" + (" as chat requests" if ldiff.chat else "")
            + (" · last tokens" if ldiff.where == "last" else "")
            + " · rose most (top), fell most (bottom)"
            + (f" · minus the change on {ldiff.control_over}" if ldiff.control_over else ""),
        ),
        name="diff_latent_set", params={"sae": ldiff.sae.id},
        bundle=diff_snippets.latent_set(ldiff, rows_set, builtin, diff_panels.side_code(client, cmp))
        if builtin and not (ldiff.control_over or ldiff.chat or ldiff.where == "last") else None,
    )  # fmt: skip
    if ldiff.control_over:
        st.caption("Change on the texts − change on the control: " + " · ".join(
            f"#{r['index']} {r['delta']:+.2f} − {r['control_delta']:+.2f} = {r['net_delta']:+.2f}"
            for r in rows_set[:8]))  # fmt: skip
    diff_panels.latent_rows(client, prompt, ldiff.sae.id, rows_set, key="set")
