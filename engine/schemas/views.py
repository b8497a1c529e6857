"""Old home of the Attention, Logit lens and DLA views' models, now in
engine/schemas/analyses.py; re-exported here for code that still imports them from here."""

from engine.schemas.analyses import *  # noqa: F403
