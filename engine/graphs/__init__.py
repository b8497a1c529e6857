"""Attribution graphs: circuit-tracer graphs over transcoder latents, and component graphs.

Vocabulary (beyond DESIGN.md): a *graph* is circuit-tracer's attribution graph of one prompt
(nodes: transcoder latents at a position, MLP reconstruction *errors*, token *embeddings*,
*logits*; links: direct linear effects), saved as circuit-tracer's graph JSON and named by its
*slug*; *influence* is circuit-tracer's cumulative influence share (smaller = more
influential); *pinned* nodes form a subgraph, grouped into named *supernodes* (qParams); a
*component graph* has heads and MLPs as nodes, from attribution patching.

Modules: ``replacement`` (transcoders and circuit-tracer's replacement model), ``cost``
(estimate and refusal), ``progress`` (progress and cancel inside ``attribute``), ``files``
(graph JSON with latent labels), ``store`` (saved graphs), ``patching`` (component graphs),
``service`` (the engine's graph service and the ``attribution_graph`` job; the labels come from
the SAE registry's transcoder examples).
"""
