"""The analyses: one module each (a pure function over the prompt run and its metadata, an
``Analysis``: engine/analyses/base.py), all listed in engine/analyses/registry.py."""
