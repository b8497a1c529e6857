"""The engine's wire protocol: pydantic request and response models, one module per family."""
