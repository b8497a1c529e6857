"""Steering: sliders that add latent or contrastive directions at hook points while the model
generates; baseline and steered continuations stream side by side (same seed and sampling)."""

from __future__ import annotations

import time

import streamlit as st

from components import compare, diff_panels, diff_snippets, shell, state, widgets
from components import directions_panel as dp
from components import steering_setup as ss
from components.diff_figures import generation_kl_figure
from components.safe import md
from components.steering_figures import continuation_html, kl_figure
from components.steering_snippets import kl_bundle
from engine.client import EngineRequestError
from engine.schemas.steering import StreamEvent

link = shell.engine_link()
client = link.client
prompt = state.get("prompt")
model = st.session_state["capabilities"].model
hooks = ss.steerable_hooks(model.n_layers)
st.title("Steering")
cmp = compare.current()
side = compare.side_toggle(  # compare mode: steer model A or B, or generate from both
    can_diff=bool(cmp.model_b),
    why_not="side-by-side generation compares two models; prompt B is steered on its own.",
    diff_label="A and B side by side",
)
prompt, slot = cmp.run_on("a" if side == "diff" else side, prompt)
both = side == "diff"  # side by side: A's and B's continuations, the vectors on both
setup = ss.from_url(state.get("steer"))
vectors: list[dict] = setup["vectors"]
acting: list[dict] = setup.get("directions", [])  # saved directions acted on (Directions page)
rev = st.session_state.setdefault("steer_rev", 0)


def save(vs: list[dict], *, reset: bool = False, ds: list[dict] | None = None) -> None:
    ds = acting if ds is None else ds
    state.put(steer=ss.to_url({"vectors": vs, "directions": ds}) if vs or ds else None)
    if reset:  # widgets are keyed by revision: a new one starts them from the setup
        st.session_state["steer_rev"] = st.session_state.get("steer_rev", 0) + 1


def default_coefficient(v: dict) -> float:
    """Twice the latent's strongest shipped activation (a unit-norm decoder row), else 4."""
    where = {"sae": v["sae"]} if v["kind"] == "sae_latent" else {"layer": v["layer"]}
    source = "sae" if v["kind"] == "sae_latent" else "transcoder"
    try:
        d = client.analyze("latent_detail", prompt, source=source, index=v["index"], **where)
    except EngineRequestError:
        return ss.DEFAULT_LATENT_COEF
    return round(2 * d.max_act, 1) if d.max_act else ss.DEFAULT_LATENT_COEF


if ss.ADD_LATENT in st.query_params:  # a link from another view: add it, drop the param
    value = st.query_params[ss.ADD_LATENT]
    del st.query_params[ss.ADD_LATENT]
    try:
        v = ss.parse_add_latent(value)
        v["coefficient"] = default_coefficient(v)
        save([*vectors, v], reset=True)
        st.toast(f"Added {md(ss.label(v))} with coefficient {v['coefficient']}")
        st.rerun()
    except ValueError as e:
        st.warning(str(e))


def vector_row(i: int, v: dict) -> dict | None:
    """One vector's widgets; its new value, or None when removed."""
    with st.container(border=True):
        c1, c2, c3, c4 = st.columns([3, 5, 3, 0.6], vertical_alignment="center")
        c1.markdown(f"**{md(ss.label(v))}**")
        lim = max(60.0 if v["kind"] == "contrastive" else 40.0, abs(v["coefficient"]))
        coef = c2.slider("coefficient", -lim, lim, float(v["coefficient"]), 0.5,
                         key=f"coef_{rev}_{i}")  # fmt: skip
        options = hooks if v["kind"] == "contrastive" else [None, *hooks]
        hook = c3.selectbox(
            "hook point", options, index=options.index(v.get("hook")) if v.get("hook") in options else 0,
            format_func=lambda h: h or "where its decoder writes", key=f"hook_{rev}_{i}",
        )  # fmt: skip
        if c4.button("✕", key=f"rm_{rev}_{i}", help="remove this vector"):
            return None
        out = {**v, "coefficient": coef, "hook": hook}
        out.pop("condition", None)
        with st.expander("Only where a latent (or a probe direction) is active"):
            cond = v.get("condition") or {}
            on = st.toggle("conditional", bool(cond), key=f"cond_{rev}_{i}")
            kinds = ["SAE latent", "probe direction"]
            kind = st.segmented_control("gate", kinds, key=f"ckind_{rev}_{i}",
                                        default=kinds[1] if cond.get("probe_hook") else kinds[0])  # fmt: skip
            a, b, c = st.columns(3)
            thr = c.number_input("threshold", value=float(cond.get("threshold", 0.0)),
                                 key=f"cthr_{rev}_{i}")  # fmt: skip
            if kind == kinds[1]:
                ph = cond.get("probe_hook") or "blocks.0.hook_resid_post"
                hook_p = a.selectbox("probe read at", hooks, index=hooks.index(ph) if ph in hooks else 0,
                                     key=f"cph_{rev}_{i}")  # fmt: skip
                pos = st.text_area(
                    "probe: positive prompts",
                    "\n".join(cond.get("positive", [])) or ss.EXAMPLE_POSITIVE,
                    key=f"cpp_{rev}_{i}",
                )
                neg = st.text_area(
                    "probe: negative prompts",
                    "\n".join(cond.get("negative", [])) or ss.EXAMPLE_NEGATIVE,
                    key=f"cpn_{rev}_{i}",
                )
                gate = {"probe_hook": hook_p, "positive": [x for x in pos.splitlines() if x.strip()],
                        "negative": [x for x in neg.splitlines() if x.strip()]}  # fmt: skip
            else:
                sae = a.text_input("SAE (hook point)", cond.get("sae") or "blocks.1.hook_resid_post",
                                   key=f"csae_{rev}_{i}")  # fmt: skip
                idx = b.number_input(
                    "latent", 0, value=int(cond.get("index", 0)), key=f"cidx_{rev}_{i}"
                )
                gate = {"sae": sae, "index": int(idx)}
            if on:
                out["condition"] = {**gate, "threshold": float(thr)}
        return {k: val for k, val in out.items() if val is not None}


new = [r for i, v in enumerate(vectors) if (r := vector_row(i, v)) is not None]
if new != vectors:
    save(new, reset=len(new) != len(vectors))
    if len(new) != len(vectors):
        st.rerun()
    vectors = new
kept = [it for i, it in enumerate(acting) if not dp.row(i, it, rev)]
if kept != acting:
    save(vectors, reset=True, ds=kept)
    st.rerun()
if not vectors and not acting:
    st.info("No steering vectors yet: add a latent's direction, a contrastive vector or a saved "
            "direction below.")  # fmt: skip

with st.expander("Add a vector", expanded=not vectors):
    tab_latent, tab_contrast, tab_saved = st.tabs(
        ["SAE or transcoder latent", "Contrastive (two prompt sets)", "Saved direction"]
    )
    with tab_saved:
        if it := dp.add_saved(client):
            save(vectors, reset=True, ds=[*acting, it])
            st.rerun()
    with tab_latent:
        a, b, c = st.columns([3, 1, 1], vertical_alignment="bottom")
        ref = a.text_input(
            "Latent", placeholder="sae:blocks.1.hook_resid_post:123 or transcoder:2:45"
        )
        if c.button("Add latent", disabled=not ref):
            try:
                v = ss.parse_add_latent(ref.strip())
                v["coefficient"] = default_coefficient(v)
                save([*vectors, v], reset=True)
                st.rerun()
            except ValueError as e:
                st.warning(str(e))
    with tab_contrast:
        a, b = st.columns(2)
        pos = a.text_area("Positive prompts (one per line)", ss.EXAMPLE_POSITIVE, height=120)
        neg = b.text_area("Negative prompts (one per line)", ss.EXAMPLE_NEGATIVE, height=120)
        c, d = st.columns([3, 1], vertical_alignment="bottom")
        hook = c.selectbox("Hook point (read and added at)", hooks,
                           index=hooks.index("blocks.0.hook_resid_post"))  # fmt: skip
        if d.button("Add contrastive"):
            v = {"kind": "contrastive", "coefficient": 4.0, "hook": hook,
                 "positive": [x for x in pos.splitlines() if x.strip()],
                 "negative": [x for x in neg.splitlines() if x.strip()]}  # fmt: skip
            save([*vectors, v], reset=True)
            st.rerun()

g1, g2, g3 = st.columns(3)
slen = g1.slider("New tokens", 5, 120, int(state.get("slen") or 30), key="w_slen_s")
stemp = g2.slider("Temperature (0 = greedy)", 0.0, 2.0, 0.8 if state.get("stemp") is None else float(state.get("stemp")), 0.1,
                  key="w_stemp_s")  # fmt: skip
seed = int(g3.number_input("Seed (both continuations)", 0, 10**6, int(state.get("sseed") or 0)))
if (slen, stemp, seed) != (state.get("slen"), state.get("stemp"), state.get("sseed")):
    state.put(slen=slen, stemp=stemp, sseed=seed)


def show(box, text: str, css: str) -> None:
    box.markdown(continuation_html(prompt, text, css), unsafe_allow_html=True)  # escaped inside


body = {"prompt": prompt, "vectors": vectors, "max_new_tokens": slen, "temperature": stemp,
        "seed": int(seed), "model": slot, "directions": [] if both else acting,
        **({"model_b": compare.SLOT_B} if both else {})}  # fmt: skip
left, right = st.columns(2, gap="large")
on_b = f" ({cmp.label('b')})" if side == "b" and cmp.active else ""  # steering model B
names = diff_panels.labels(cmp) if both else (f"Baseline{on_b}", f"Steered{on_b}")
left.markdown(f"**{md(names[0])}**" + (" (steered)" if both and vectors else ""))
right.markdown(f"**{md(names[1])}**" + (" (steered)" if both and vectors else ""))
box_b, box_s, note = left.empty(), right.empty(), st.empty()
events: list[StreamEvent] = []
t0, first = time.perf_counter(), None
try:
    for e in client.steer_stream(body):
        events.append(e)
        if e.type == "token":
            first = first if first is not None else time.perf_counter() - t0
            got = ss.collect(events)
            show(box_b, got["base"], "baseline-out")
            show(box_s, got["steered"], "steered-out")
except EngineRequestError as e:
    st.error(e.message, icon=":material/warning:")
    st.stop()
got = ss.collect(events)
show(box_b, got["base"], "baseline-out")
show(box_s, got["steered"], "steered-out")
end = got["end"]
if end is not None and end.type == "error":
    st.error(end.message)
applied = "; ".join(
    f"{v.label} × {v.coefficient:g} at {v.hook} (norm {v.norm:.3g})"
    + (" where its condition holds" if v.conditional else "")
    for v in (events[0].vectors if events else None) or []
)  # fmt: skip
rate = end.tokens_per_s if end is not None else None
note.caption(
    (f"first token after {first * 1e3:.0f} ms · " if first is not None else "")
    + (f"{rate:.0f} tokens/s per continuation · " if rate else "")
    + (applied or ("no vectors" if both else "no vectors: the two continuations are the same"))
)
if got["kl"] and both:
    widgets.figure(generation_kl_figure(got["kl"], ("A", "B")), name="steering_models_kl",
                   params={"vectors": len(vectors), "seed": int(seed), "temperature": stemp},
                   bundle=diff_snippets.generation(body, events, diff_panels.side_code(client, cmp)))  # fmt: skip
elif got["kl"]:
    widgets.figure(kl_figure(got["kl"]), name="steering_kl",
                   params={"vectors": len(vectors), "seed": int(seed), "temperature": stemp},
                   bundle=kl_bundle(body, events, dp.saved_vectors(client, acting)),
                   **compare.figure_side(client, side, prompt))  # fmt: skip


def imported() -> None:
    f = st.session_state.get(f"import_{rev}")
    if f is None:
        return
    try:
        loaded = ss.from_file(f.getvalue())
    except ValueError as e:
        st.session_state["import_error"] = str(e)
        return
    save(loaded["vectors"], reset=True, ds=loaded.get("directions", []))


with st.expander("Export / import this setup"):
    st.download_button("Download setup (JSON)", ss.to_file({"vectors": vectors, "directions": acting}),
                       file_name="steering_setup.json", mime="application/json")  # fmt: skip
    st.caption(
        "The page's URL carries the same setup (its `steer=` parameter): share or bookmark it."
    )
    st.file_uploader("Import a setup file", type=["json"], key=f"import_{rev}", on_change=imported)
    if err := st.session_state.pop("import_error", None):
        st.error(f"Could not import: {md(err)}")
