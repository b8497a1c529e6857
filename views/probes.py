"""Probes: how well a direction separates two prompt sets at every hook point (a job), next to
the baselines that keep it honest, and each hook's fitted direction saved by name."""

from __future__ import annotations

import streamlit as st

from components import job_box, probe_setup, shell, state, widgets
from components import probe_figures as pf
from components.bundles import ModelRef
from components.probe_snippets import spec as bundle_spec
from components.safe import md
from engine.client import EngineRequestError

link = shell.engine_link()
client = link.client
caps = st.session_state["capabilities"]
model = caps.model
hooks = probe_setup.residual_hooks(model.n_layers)
st.title("Probes")
st.caption(
    "At each hook point, a difference-of-means direction and a logistic-regression probe "
    "(scikit-learn) are fitted on a train split of two prompt sets and measured on the held-out "
    "rest, next to a probe fitted on shuffled labels and the best single SAE latent where an SAE "
    "reads that hook point. Runs as a job on the engine; the result is cached by its inputs."
)

setup = st.expander("Prompt sets and settings", expanded=state.get("probe") is None,
                    icon=":material/tune:")  # fmt: skip
with setup, st.form("probe_form", border=False):
    source = st.segmented_control("Prompts from", ["typed", "dataset"], default="typed",
                                  key="pr_source")  # fmt: skip
    a, b = st.columns(2)
    form = {"source": source or "typed"}
    form["positive"] = a.text_area("Positive set (one prompt a line)",
                                   "\n".join(probe_setup.EXAMPLE_POSITIVE), height=160, key="pr_pos")  # fmt: skip
    form["negative"] = b.text_area("Negative set (one prompt a line)",
                                   "\n".join(probe_setup.EXAMPLE_NEGATIVE), height=160, key="pr_neg")  # fmt: skip
    st.caption("Or, with *dataset* above: a labelled dataset (a local csv/jsonl/parquet file or "
               "save_to_disk directory in the engine's data directories, or a hub name)")  # fmt: skip
    with st.container():
        d1, d2, d3, d4, d5 = st.columns([4, 1, 1, 1, 1])
        form["dataset"] = d1.text_input("Dataset", key="pr_dataset")
        form["split"] = d2.text_input("Split", "train", key="pr_split")
        form["column"] = d3.text_input("Text column", "text", key="pr_column")
        form["label_column"] = d4.text_input("Label column", "label", key="pr_label")
        form["positive_label"] = d5.text_input("Positive label", key="pr_poslabel",
                                               help="default: the larger of two values")  # fmt: skip
    c1, c2, c3, c4 = st.columns([2, 2, 1, 1])
    form["rule"] = c1.selectbox("Position", list(probe_setup.RULES), key="pr_rule")
    form["pattern"] = c2.text_input("Pattern (tokens matching)", r"^ felt$", key="pr_pattern",
                                    help="a regular expression; the last matching token is read")  # fmt: skip
    form["heldout"] = c3.number_input("Held out", 0.05, 0.8, 0.25, 0.05, key="pr_heldout")
    form["seed"] = c4.number_input("Seed", 0, 2**31 - 1, 0, key="pr_seed")
    form["hooks"] = st.multiselect("Hook points", hooks, default=hooks, key="pr_hooks")
    run = st.form_submit_button("Run the sweep", type="primary", icon=":material/play_arrow:")
if run:
    params = probe_setup.params(form)
    try:
        job_box.start(client, "probe_job", "probe_sweep", params)
    except EngineRequestError as e:
        st.error(e.message, icon=":material/warning:")
if out := job_box.follow(client, "probe_job", "the probe sweep"):
    if out.job.status == "done":
        state.put(probe=out.result["sweep"])
    else:
        st.error(out.job.error or out.job.message)

sweep = state.get("probe")
if not sweep:
    st.info("Run a sweep to see held-out accuracy and AUROC at each hook point.")
    st.stop()
try:
    res = client.probe_sweep(sweep)
except EngineRequestError as e:  # cleared from the cache, or another model loaded
    state.put(probe=None)
    st.warning(e.message)
    st.stop()
if res.model != model.fingerprint:
    st.warning("This sweep ran on another model: run it again on this one.")
    st.stop()
ref = ModelRef.from_info(model).ref if model.source == "local" else None
bundle = bundle_spec(res, res.params, ref) if res.params else None
figure_params = {
    "sweep": sweep,
    "position": res.position,
    "n": res.n_positive + res.n_negative,
}
position = None
if res.positions:
    labels = {
        p: f"{p} {t!r}" for p, t in zip(res.positions, res.position_tokens or [], strict=False)
    }
    h1, h2 = st.columns(2)
    scorer = h1.selectbox("Heatmap of", list(pf.SCORERS), format_func=lambda k: pf.SCORERS[k][0],
                          key="pr_hm_scorer")  # fmt: skip
    metric = h2.selectbox("Metric", list(pf.METRICS), index=1, format_func=pf.METRICS.get,
                          key="pr_hm_metric")  # fmt: skip
    widgets.figure(pf.position_heatmap(res, scorer=scorer, metric=metric), name="probe_heatmap",
                   params=figure_params | {"scorer": scorer, "metric": metric}, bundle=bundle)  # fmt: skip
    position = st.select_slider("Layer curve at position", res.positions,
                                value=res.positions[-1], format_func=labels.get, key="pr_pos_curve")  # fmt: skip
widgets.figure(pf.layer_curve(res, position=position), name="probe_layers",
               params=figure_params | {"at": position}, bundle=bundle)  # fmt: skip
for line in pf.verdict(res, position):
    st.markdown(f"- {md(line)}")
st.dataframe(pf.table_rows(res, position), hide_index=True, use_container_width=True)

st.subheader("Save a direction")
rows = pf.rows_at(res, position)
best = max(rows, key=lambda r: (r.logistic_probe.auroc, r.logistic_probe.accuracy))
s1, s2, s3, s4 = st.columns([3, 2, 3, 2], vertical_alignment="bottom")
hook = s1.selectbox("Hook point", [r.hook for r in rows],
                    index=[r.hook for r in rows].index(best.hook), key="pr_save_hook")  # fmt: skip
method = s2.selectbox("Method", ["logistic_probe", "diff_of_means"],
                      format_func=lambda k: pf.SCORERS[k][0], key="pr_save_method")  # fmt: skip
name = s3.text_input("Direction name", placeholder="default: method-hook-sweep", key="pr_save_name")
if s4.button("Save direction", icon=":material/save:", key="pr_save"):
    try:
        info = client.save_probe_direction(sweep, hook, method, position, name or None)
        st.session_state["probe_saved"] = (
            f"Saved direction **{md(info.name)}** ({md(pf.SCORERS[method][0])} at {md(hook)}): "
            "listed under *Saved directions* in the sidebar; act on it on the Directions page."
        )
        st.rerun()  # the sidebar, drawn before this page, lists it
    except EngineRequestError as e:
        st.error(e.message, icon=":material/warning:")
if saved := st.session_state.pop("probe_saved", None):
    st.success(saved)
