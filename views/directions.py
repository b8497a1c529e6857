"""Directions: the saved directions of the loaded model, and acting on one: add, ablate or cap
it (optionally only where a gate fires) with greedy generations with and without side by side,
measure it over a sweep of coefficients (behaviour rate and harmless KL), export the model
with it projected out of the weights."""

from __future__ import annotations

import streamlit as st

from components import direction_figures as dfig
from components import directions_panel as dp
from components import job_box, shell, state, widgets
from components import steering_setup as ss
from components.safe import md
from components.steering_figures import continuation_html
from engine.client import EngineRequestError
from engine.schemas.directions import SweepResult
from engine.schemas.steering import StreamEvent

link = shell.engine_link()
client = link.client
prompt = state.get("prompt")
model = st.session_state["capabilities"].model
n_layers = model.n_layers
st.title("Directions")

# --- the saved directions ----------------------------------------------------------------------
others = st.toggle("Show directions found on other models", key="dir_all")
saved = shell.call(client.directions, all_models=others)
if not saved:
    st.info("No saved directions for this model yet: the Probes page saves them (difference of "
            "means, probe weights), or POST /directions.", icon=":material/info:")  # fmt: skip
    st.stop()
st.dataframe(
    [{"name": d.name, "hook point": d.hook, "method": d.method,
      "metrics": ", ".join(f"{k} {v:.3g}" for k, v in d.metrics.items()),
      "norm": round(d.norm, 3), "found on": d.model_name,
      "usable here": {"same_model": "yes", "same_shape": "on request",
                      "other_model": "no"}[d.compatibility]}
     for d in saved],
    hide_index=True, use_container_width=True,
)  # fmt: skip
usable = [d for d in saved if d.compatibility != "other_model"]
names = [d.name for d in usable]
if not names:
    st.warning("None of these directions can act on the loaded model.")
    st.stop()
current = state.get("dir") if state.get("dir") in names else names[0]
a, b = st.columns([4, 1], vertical_alignment="bottom")
name = a.selectbox("Direction", names, index=names.index(current),
                   format_func=lambda n: dp.label(next(d for d in usable if d.name == n)))  # fmt: skip
if name != state.get("dir"):
    state.put(dir=name)
info = next(d for d in usable if d.name == name)
other = info.compatibility == "same_shape"
if other:
    st.caption(f":material/info: Found on {md(info.model_name or 'another model')}, "
               "a model of the same shape: used here on request.")  # fmt: skip
if b.button("Delete", icon=":material/delete:", help="delete this saved direction"):
    shell.call(client.delete_direction, name)
    st.rerun()

# --- act on it ----------------------------------------------------------------------------------
st.subheader("Act on it")
c1, c2, c3 = st.columns([2, 3, 2])
mode = c1.radio("Mode", list(dp.MODES), format_func=dp.MODES.get, key="dir_mode")
where_opts = (
    ["every layer", "chosen layers"]
    if mode == "ablate"
    else ["its own hook point", "chosen layers"]
)
where = c2.radio("Where", where_opts, horizontal=True, key=f"dir_where_{mode}")
layers: list[int] | str | None = "all" if mode == "ablate" else None
if where == "chosen layers":
    layers = c2.multiselect("Layers", list(range(n_layers)), default=[0], key="dir_layers")
coeff, lo, hi = 1.0, None, None
if mode == "add":
    coeff = c3.number_input("Coefficient", -1e4, 1e4, 2.0, 0.5, key="dir_coeff")
elif mode == "ablate":
    coeff = c3.slider("Share of the projection removed", 0.0, 1.0, 1.0, 0.05, key="dir_share")
else:
    lo = c3.number_input("Lowest projection", value=-1.0, key="dir_lo")
    hi = c3.number_input("Highest projection", value=1.0, key="dir_hi")
gate = None
with st.expander("Only where a probe or a latent fires (gate)"):
    kinds = ["none", "saved direction", "SAE latent"]
    gk = st.segmented_control("gate", kinds, default="none", key="dir_gate_kind")
    g1, g2, g3 = st.columns(3)
    if gk == "saved direction":
        gname = g1.selectbox("probe direction", names, key="dir_gate_dir")
        gate = {
            "direction": gname,
            "threshold": g3.number_input("threshold", value=0.0, key="dir_gthr"),
        }
    elif gk == "SAE latent":
        sae = g1.text_input("SAE (hook point)", "blocks.1.hook_resid_post", key="dir_gate_sae")
        idx = g2.number_input("latent", 0, value=0, key="dir_gate_idx")
        gate = {
            "sae": sae,
            "index": int(idx),
            "threshold": g3.number_input("threshold", value=0.0, key="dir_gthr2"),
        }
with_others: list[str] = []
if mode == "ablate":
    with_others = st.multiselect(
        "Ablate together with", [n for n in names if n != name], key="dir_together",
        help="more saved directions ablated whole at the same layers: the subspace they span "
        "with this one is removed (e.g. one concept's directions from several layers of a "
        "probe sweep); also in the export",
    )  # fmt: skip
try:
    it = dp.intervention(name, mode, layers or None, coeff, lo, hi, gate, other)
    acted = [it, *dp.together(it, with_others)]
except ValueError as e:
    st.warning(md(str(e)))
    st.stop()
n_new = st.slider("New tokens (greedy)", 5, 80, 30, key="dir_new")


def show(box, text: str, css: str) -> None:
    box.markdown(continuation_html(prompt, text, css), unsafe_allow_html=True)  # escaped inside


left, right = st.columns(2, gap="large")
left.markdown("**Without**")
right.markdown(f"**With:** {md('; '.join(dp.describe(x) for x in acted))}")
box_b, box_s = left.empty(), right.empty()
body = {"prompt": prompt, "directions": acted, "max_new_tokens": n_new, "temperature": 0.0}
events: list[StreamEvent] = []
try:
    for e in client.steer_stream(body):
        events.append(e)
        if e.type == "token":
            got = ss.collect(events)
            show(box_b, got["base"], "dir-without")
            show(box_s, got["steered"], "dir-with")
except EngineRequestError as e:
    st.error(md(e.message), icon=":material/warning:")
else:
    got = ss.collect(events)
    show(box_b, got["base"], "dir-without")
    show(box_s, got["steered"], "dir-with")
    if got["end"] is not None and got["end"].type == "error":
        st.error(md(got["end"].message or ""))
    setup = ss.to_url({"vectors": [], "directions": acted})
    if st.button("Open on the Steering page (sampling, more vectors)", icon=":material/tune:"):
        state.put(steer=setup)
        st.switch_page("views/steering.py")

# --- measure it ---------------------------------------------------------------------------------
st.subheader("Measure it")
st.caption("For each value: the share of the held-out prompts whose greedy continuation the "
           "classifier flags, and KL(clean ‖ intervened) of the next-token distributions at "
           "every position of the harmless prompts (their own positions, not generated ones)"
           + (": of this direction alone, without those ablated together with it."
              if with_others else "."))  # fmt: skip
m1, m2 = st.columns(2)
held = m1.text_area(
    "Held-out prompts (one per line)", dp.REFUSAL_PROMPTS, height=150, key="dir_held"
)
harmless = m2.text_area(
    "Harmless prompts, for the KL", dp.HARMLESS_PROMPTS, height=150, key="dir_harmless"
)
k1, k2, k3, k4 = st.columns([3, 2, 2, 1.4], vertical_alignment="bottom")
ckind = k1.radio("Classifier", ["keywords", "probe"], horizontal=True, key="dir_ckind")
if ckind == "keywords":
    kw = k1.text_input("Keywords (comma-separated, any of them)", "I can't", key="dir_kw")
    classifier = {"keywords": [k.strip() for k in kw.split(",") if k.strip()]}
else:
    classifier = {"probe": k1.selectbox("probe direction", names, key="dir_cprobe"),
                  "threshold": k1.number_input("threshold", value=0.0, key="dir_cthr")}  # fmt: skip
default_values = (
    "0, 0.5, 1" if mode == "ablate" else ("0, 2, 4, 8" if mode == "add" else "4, 2, 1, 0")
)
values_text = k2.text_input(
    f"Values: {dfig.value_name(mode)} (comma-separated)",
    default_values,
    key=f"dir_values_{mode}",
)
chat = k3.toggle("Chat template", value=True, key="dir_chat",
                 help="wrap each prompt as a user turn in the tokenizer's chat template")  # fmt: skip
sweep_new = k3.number_input("New tokens per prompt", 1, 64, 8, key="dir_sweep_new")
run = k4.button("Measure", type="primary", icon=":material/analytics:")
if run:
    try:
        params = {"intervention": it, "values": dp.parse_values(values_text),
                  "prompts": dp.lines(held), "harmless": dp.lines(harmless),
                  "classifier": classifier, "chat": chat, "max_new_tokens": int(sweep_new)}  # fmt: skip
        job_box.start(client, "dir_sweep_job", "direction_sweep", params)
        st.session_state["dir_sweep_params"] = params
    except ValueError as e:
        st.warning(md(str(e)))
if done := job_box.follow(client, "dir_sweep_job", "the measurement"):
    if done.job.status == "done":
        st.session_state["dir_sweep"] = (st.session_state.get("dir_sweep_params"),
                                         SweepResult.model_validate(done.result))  # fmt: skip
    elif done.job.status == "failed":
        st.error(md(done.job.error), icon=":material/warning:")
if kept := st.session_state.get("dir_sweep"):
    params, result = kept
    behaviour = "keyword" if params["classifier"].get("keywords") else "probe"
    direction = shell.call(client.direction, result.direction)
    widgets.figure(dfig.sweep_figure(result, behaviour), name="direction_sweep",
                   params={"direction": result.direction, "mode": result.mode},
                   bundle=dfig.sweep_bundle(params, result, direction))  # fmt: skip
    st.dataframe(
        [{dfig.value_name(result.mode): r.value, "rate": round(r.rate, 3),
          "KL (nats)": round(r.kl, 4), "first continuation": (r.examples or [""])[0]}
         for r in result.rows],
        hide_index=True, use_container_width=True,
    )  # fmt: skip

# --- export -------------------------------------------------------------------------------------
st.subheader("Export the orthogonalised model")
st.caption("The model with this direction (and those ablated together with it: their span) "
           "projected out of every weight that writes to the "
           "residual stream (embeddings, each attention output W_O and MLP W_out, with biases): "
           "the weight form of ablating it at every layer, as a Hugging Face directory in the "
           "engine's data directory.")  # fmt: skip
e1, e2 = st.columns([3, 1], vertical_alignment="bottom")
out = e1.text_input("Folder name (under <data dir>/exports)", "", key="dir_out",
                    placeholder=f"{model.name}-{name}-orthogonalised")  # fmt: skip
if e2.button("Export orthogonalised model", icon=":material/save:"):
    try:
        res = client.export_orthogonalised(name, out.strip() or None, allow_other_model=other,
                                           also=with_others)  # fmt: skip
        st.session_state["dir_export"] = res
    except EngineRequestError as e:
        st.error(md(e.message), icon=":material/warning:")
if res := st.session_state.get("dir_export"):
    st.success(f"Wrote {len(res.files)} files ({len(res.changed)} weights orthogonalised); "
               "load the folder with the model switcher:", icon=":material/check_circle:")  # fmt: skip
    st.code(res.path, language=None)
