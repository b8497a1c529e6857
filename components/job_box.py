"""A page's long job: start it, follow its progress with a cancel button, and survive the engine.

The job (id, kind, params) is kept in the session state under the page's `key` until it
finishes, so a rerun follows it again. If the engine stops while the job runs, the page
shows the shell's banner and reconnects; the new engine does not know the job, which is
then reported as lost when the engine stopped, with a button that runs it again.
"""

from __future__ import annotations

import time

import streamlit as st

from components import shell
from components.safe import md
from engine.client import EngineClient, EngineRequestError, EngineUnavailable, JobLost

FINISHED = ("done", "failed", "cancelled")


def start(client: EngineClient, key: str, kind: str, params: dict) -> None:
    """Start a job of `kind` and keep it under `key` (the page follows it on its next run)."""
    st.session_state.pop(f"{key}:lost", None)  # a refusal at submit is said instead
    job = shell.call(client.start_job, kind, params)
    st.session_state[key] = {"id": job["id"], "kind": kind, "params": params}


def follow(client: EngineClient, key: str, what: str) -> dict | None:
    """The job under `key`: its progress until it finishes, then its final state
    (``{"job", "result"}``). None when there is none, or it was lost (said on the page, with
    a button to run it again). `what` names it in sentences ("the graph job")."""
    pending = st.session_state.get(key)
    if pending is None:
        _lost_notice(client, key, what)
        return None
    box = st.empty()  # the progress box goes once the job is over, or lost
    try:
        with box.container():
            final = _progress(client, pending["id"])
    except JobLost as e:
        box.empty()
        del st.session_state[key]
        st.session_state[f"{key}:lost"] = {**pending, "expired": e.expired}
        _lost_notice(client, key, what)
        return None
    except EngineUnavailable:  # keep the job: the next run finds out whether it survived
        box.empty()
        shell.reconnect()
        return None
    except EngineRequestError as e:
        box.empty()
        del st.session_state[key]
        st.error(e.message, icon=":material/warning:")
        return None
    box.empty()
    del st.session_state[key]
    return final


def _progress(client: EngineClient, job_id: str) -> dict:
    """Show a running job's progress, ETA and a cancel button until it finishes."""
    if st.button("Cancel", key=f"cancel_{job_id}", icon=":material/cancel:"):
        client.cancel_job(job_id)
    bar = st.progress(0.0, text="queued")
    while True:
        state = client.job(job_id)
        info = state["job"]
        eta = f" · about {info['eta_s']:.0f} s left" if info.get("eta_s") else ""
        bar.progress(min(info["progress"], 1.0), text=f"{md(info['message'])}{eta}")
        if info["status"] in FINISHED:
            return state
        time.sleep(0.25)


def _lost_notice(client: EngineClient, key: str, what: str) -> None:
    lost = st.session_state.get(f"{key}:lost")
    if lost is None:
        return
    why = "expired on the engine" if lost.get("expired") else "was lost when the engine stopped"
    notice = st.empty()
    notice.warning(f"{what.capitalize()} {why}.", icon=":material/sync_problem:")
    a, b = st.columns([1, 1])
    if a.button("Run it again", key=f"{key}:rerun", type="primary", icon=":material/replay:"):
        notice.empty()  # a refusal at submit is shown instead of the old notice
        start(client, key, lost["kind"], lost["params"])
        st.rerun()
    if b.button("Dismiss", key=f"{key}:dismiss"):
        st.session_state.pop(f"{key}:lost", None)
        st.rerun()
