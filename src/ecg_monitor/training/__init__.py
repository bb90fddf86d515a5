"""Training, export and quantization of the beat classifier (needs the ``train`` extra: torch).

Nothing here is imported at run time: the live pipeline only loads the exported ONNX model.
"""
