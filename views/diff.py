"""Diff: where model B (or prompt B) differs from A on the prompt: per-token KL, the changed
predictions, the residual difference and its lens, the latents that changed; and, over a text
set, the activation-difference lens and the latents' mean changes (jobs)."""

from __future__ import annotations

import streamlit as st

from components import compare, diff_panels, diff_snippets, job_box, shell, state, widgets, windows
from components import diff_figures as dfig
from components.safe import md

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
st.caption(f"A = {md(labels[0])} · B = {md(labels[1])}" + (
    f" · prompt B: {md(cmp.prompt_b)!s}" if cmp.prompt_b else ""))  # fmt: skip

tokens, pos, _ = diff_panels.tokens_panel(client, prompt, cmp, windows.DIFF)
st.subheader("Residual stream difference")
diff_panels.resid_panel(client, prompt, cmp, tokens, pos, windows.DIFF)

st.subheader("Latents that changed")
saes = shell.call(client.saes)
if not saes:
    st.info("No SAE is attached to model A: attach one on the SAE latents page.")
    st.stop()
ids = [s.id for s in saes]
sae = state.get("sae") if state.get("sae") in ids else ids[0]
sae = st.selectbox("SAE (model A's, applied to both sides' activations at its hook)", ids,
                   index=ids.index(sae), key="w_diff_sae")  # fmt: skip
lat = shell.call(compare.pair, client, "diff_latents", prompt, cmp, sae=sae, pos=pos, top_k=10)
changed = dfig.latent_rows(lat)
if changed:
    widgets.figure(
        dfig.latent_changes_figure(
            changed, title=f"Latents whose activation changed most at pos {pos}",
            subtitle=f"{sae} · A and B activations, largest |B − A| on top",
        ),
        name="diff_latents", params={"pos": pos, "sae": sae},
        bundle=diff_snippets.latents(lat, changed, cmp),
    )  # fmt: skip
    for row in changed:
        c1, c2, c3, c4 = st.columns([5, 1.3, 1.3, 1.3], vertical_alignment="center")
        c1.markdown(
            f"**#{row['index']}** {md(row.get('label') or '(no label)')} · A {row['a']:.2f} → "
            f"B {row['b']:.2f}" + (f" · e.g. {md(row['example'])}" if row.get("example") else "")
        )
        c2.link_button("Latent panel", compare.link("latents", sae=sae, latent=row["index"]),
                       icon=":material/scatter_plot:")  # fmt: skip
        for col, side in ((c3, "a"), (c4, "b")):
            col.link_button(
                f"Steer on {side.upper()}",
                compare.link("steering", side=side, add_latent=f"sae:{sae}:{row['index']}"),
                icon=":material/tune:",
            )
else:
    st.caption("No latent changed at this position.")

st.subheader("Over a text set")
st.caption(
    "The activation-difference lens (mean resid_B − resid_A per layer over neutral texts, read "
    "through the unembedding and the SAE) and each latent's mean activation and firing "
    "frequency change: jobs on the engine, with progress, cached by their inputs."
)
texts = st.text_input("Texts (a file in the engine's data directories; empty: its neutral set)",
                      key="w_diff_texts")  # fmt: skip
job_params = {**cmp.pair(), "sae": sae, **({"path": texts} if texts else {})}
j1, j2 = st.columns(2)
if j1.button("Activation-difference lens", icon=":material/play_arrow:"):
    job_box.start(client, "adiff_job", "adiff_lens", job_params)
if j2.button("Latent changes over the set", icon=":material/play_arrow:"):
    job_box.start(client, "ldiff_job", "latent_diff_set", job_params)
if out := job_box.follow(client, "adiff_job", "the activation-difference lens"):
    if out.job.status == "done":
        st.session_state["adiff_result"] = out.result
    else:
        st.error(out.job.error or out.job.message)
if out := job_box.follow(client, "ldiff_job", "the latent changes job"):
    if out.job.status == "done":
        st.session_state["ldiff_result"] = out.result
    else:
        st.error(out.job.error or out.job.message)
if adiff := st.session_state.get("adiff_result"):
    widgets.figure(
        dfig.layer_tokens_figure(
            adiff["rows"], adiff["lens"], title="Activation-difference lens",
            subtitle=f"top tokens of W_U · mean(resid_B − resid_A) over {adiff['n_texts']} texts",
        ),
        name="diff_adiff_lens", params={"texts": adiff.get("source", "neutral set")},
        bundle=diff_snippets.adiff_lens(adiff),
    )  # fmt: skip
if ldiff := st.session_state.get("ldiff_result"):
    rows_set = dfig.latent_rows(ldiff)
    widgets.figure(
        dfig.latent_changes_figure(
            rows_set, title="Latents whose mean activation changed most over the set",
            subtitle=f"{ldiff.get('sae', sae)} · over {ldiff.get('n_texts', '?')} texts",
        ),
        name="diff_latent_set", params={"sae": ldiff.get("sae", sae)},
        bundle=diff_snippets.latent_set(ldiff, rows_set),
    )  # fmt: skip
