"""Attribution graph: circuit-tracer graphs over transcoder latents, or component graphs from
attribution patching; click a node, pin it, group pins into supernodes."""

from __future__ import annotations

import streamlit as st

from components import compare, graph_snippets, job_box, shell, state, token_refs, widgets
from components import graph_figures as gf
from components import graph_panel as panel
from components.safe import md

link = shell.engine_link()
client = link.client
prompt = state.get("prompt")
caps = st.session_state["capabilities"]
has_tc = caps.features["transcoders"].available
st.title("Attribution graph")
compare.not_here(
    "this page shows model A only: a graph is one model's circuit (made with its "
    "transcoders), and two graphs do not subtract node by node. The Diff page and DLA's "
    "difference side compare the two models' components."
)


def show_graph(slug: str) -> None:
    state.put(graph=slug, gnode=None, pinned=[], snodes=[])
    st.session_state.pop("graph_opened", None)


def start(params: dict) -> None:
    job_box.start(client, "graph_job", "attribution_graph", {"prompt": prompt, **params})


# --- a running job (or one lost with the engine) ---------------------------------------
if done := job_box.follow(client, "graph_job", "the graph job"):
    info = done.job
    if info.status == "done":
        show_graph(done.result["slug"])
        st.rerun()
    elif info.status == "failed":
        st.error(info.error, icon=":material/warning:")
    else:
        st.info("The graph job was cancelled.", icon=":material/cancel:")

saved = shell.call(client.graphs)
slug = state.get("graph")
if slug == "auto":  # a deep link: this prompt's newest graph, or make one now
    mine = [g for g in saved if g.prompt == prompt and g.kind == "transcoder"]
    if mine:
        show_graph(mine[0].slug)
        st.rerun()
    elif has_tc and "graph_job" not in st.session_state:
        state.put(graph=None)
        start({})
        st.rerun()

# --- saved graphs and new ones ------------------------------------------------------
names = {g.slug: f"{g.prompt[:50]} · {g.kind.value} · {g.n_nodes} nodes" for g in saved}
top = st.columns([3, 1], vertical_alignment="bottom")
choice = top[0].selectbox(
    "Saved graphs (this model)", list(names), index=list(names).index(slug) if slug in names
    else None, format_func=names.get, placeholder="none yet: make one below",
)  # fmt: skip
if choice and choice != slug:
    show_graph(choice)
    st.rerun()
if slug in names and top[1].button("Delete", icon=":material/delete:"):
    shell.call(client.delete_graph, slug)
    state.put(graph=None, gnode=None, pinned=[], snodes=[])
    st.rerun()

with st.expander("New graph", expanded=slug not in names):
    kinds = ["Transcoder latents", "Components (attribution patching)"]
    kind = st.segmented_control("Kind", kinds, default=kinds[0] if has_tc else kinds[1])
    if kind == kinds[0]:
        if not has_tc:
            st.info(caps.features["transcoders"].reason, icon=":material/info:")
        c = st.columns(4)
        params = {
            "max_feature_nodes": c[0].number_input("Latent node budget", 1, 100_000, 256),
            "max_n_logits": c[1].number_input("Max logits", 1, 50, 5),
            "batch_size": c[2].number_input("Batch size", 1, 4096, 64),
            "node_threshold": c[3].slider("Prune (node share)", 0.1, 1.0, 0.8),
        }
        key = repr((caps.model.fingerprint, prompt, sorted(params.items())))
        if has_tc and st.session_state.get("graph_cost", (None,))[0] != key:  # one forward pass
            st.session_state["graph_cost"] = (key, shell.call(client.graph_cost, prompt, **params))
        cost = st.session_state["graph_cost"][1] if has_tc else None
        if cost:
            st.caption(
                f"{cost.n_tokens} tokens · {cost.active_latents} active latents · "
                f"{cost.latent_nodes} attributed in {cost.batches} backward passes · "
                f"≈{cost.memory_bytes / 2**20:.0f} MiB of "
                f"{cost.available_bytes / 2**30:.1f} GiB free on {cost.device}"
            )
            if not cost.fits:
                st.error(cost.reason, icon=":material/block:")
        if st.button("Generate", type="primary", disabled=not (cost and cost.fits)):
            start(params)
            st.rerun()
    else:
        corrupt = st.text_input("Corrupted prompt (same number of tokens)", state.get("corrupt"))
        c = st.columns(2)
        target = c[0].text_input("Target token (·Paris or #123)", "")
        baseline = c[1].text_input("Minus baseline token (optional)", "")
        if st.button("Build component graph", type="primary", disabled=not (corrupt and target)):
            state.put(corrupt=corrupt)
            ref = token_refs.to_wire(token_refs.from_typed(target))
            base = token_refs.to_wire(token_refs.from_typed(baseline)) if baseline else None
            info = shell.call(client.component_graph, prompt, corrupt, ref, baseline=base)
            show_graph(info.slug)
            st.rerun()

if slug not in names:
    st.stop()

# --- the graph ------------------------------------------------------------------------
doc = shell.call(client.graph, slug)
graph_info = next(g for g in saved if g.slug == slug)
graph_prompt = graph_info.prompt
if st.session_state.get("graph_opened") != slug:  # first look: pins from the file's qParams
    st.session_state["graph_opened"] = slug
    q = doc.get("qParams", {})
    if not state.get("pinned") and not state.get("snodes") and q.get("pinnedIds"):
        state.put(pinned=q["pinnedIds"], snodes=panel.encode_supernodes(q.get("supernodes", [])))
pinned, groups = state.get("pinned") or [], panel.decode_supernodes(state.get("snodes") or [])


def save_q(change, clicked: str | None) -> None:
    """Save a pin edit, merged with edits others saved meanwhile (graph_panel.save_qparams)."""
    version = graph_info.qparams_version
    q = shell.call(
        panel.save_qparams, client, slug, change, (pinned, groups), version, clicked or ""
    )
    state.put(pinned=q["pinnedIds"], snodes=panel.encode_supernodes(q["supernodes"]))


c = st.columns([2, 2, 1], vertical_alignment="bottom")
threshold = widgets.bound("gthr", c[0].slider, "Node threshold (cumulative influence)",
                          min_value=0.05, max_value=1.0, step=0.05)  # fmt: skip
max_links = c[1].slider("Links shown (strongest)", 20, 2000, 300, step=20)
only_pinned = c[2].toggle("Pinned only", disabled=not pinned)
left, right = st.columns([5, 2], gap="medium")
with left:
    fig = gf.graph_figure(
        doc, threshold=threshold, max_links=max_links, selected=state.get("gnode"),
        pinned=pinned, supernodes=groups, only_pinned=only_pinned,
    )  # fmt: skip

    def clicked(point: dict) -> dict:
        node = point.get("customdata")
        node = node[0] if isinstance(node, list) else node
        return {"gnode": node} if isinstance(node, str) else {}

    bundle = graph_snippets.graph_bundle(
        doc, graph_info.model_dump(mode="json"), threshold=threshold, max_links=max_links,
        pinned=pinned, only_pinned=only_pinned, model=caps.model.model_dump(),
    )  # fmt: skip
    widgets.figure(
        fig, name="attribution_graph", on_click=clicked, bundle=bundle, prompt=graph_prompt,
        params={"graph": slug, "threshold": threshold, "max_links": max_links},
    )  # fmt: skip
with right:
    node = gf.node_by_id(doc, state.get("gnode"))
    if node is None:
        st.caption("Click a node to see it here, pin it, or steer with it.")
    else:
        st.subheader(md(gf.label(node)[:60]))
        nid = node["node_id"]
        if nid in pinned:
            if st.button("Unpin", icon=":material/keep_off:"):
                save_q(lambda p, g: ([x for x in p if x != nid], g), nid)
                st.rerun()
        elif st.button("Pin", icon=":material/keep:", type="primary"):
            save_q(lambda p, g: (p + [nid] if nid not in p else p, g), nid)
            st.rerun()
        if node["feature_type"] == "cross layer transcoder":
            panel.latent_panel(client, graph_prompt, node)
        panel.links_table(doc, nid)
    if pinned:
        st.markdown(f"**Pinned** ({len(pinned)})")
        labels = {n["node_id"]: gf.label(n) for n in doc["nodes"]}
        members = st.multiselect("Group into a supernode", pinned, format_func=labels.get)
        name = st.text_input("Supernode name", placeholder="e.g. say Paris")
        if st.button("Make supernode", disabled=not (members and name.strip())):
            group = [name.strip(), *members]
            save_q(lambda p, g: (p, g + [group] if group not in g else g), state.get("gnode"))
            st.rerun()
        for i, grp in enumerate(groups):
            if st.button(f"✕ {md(grp[0])} ({len(grp) - 1})", key=f"sn_{i}"):
                save_q(lambda p, g, gone=grp: (p, [x for x in g if x != gone]), state.get("gnode"))
                st.rerun()
