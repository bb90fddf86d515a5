"""The packaged beat classifier: int8 ONNX model, the float model it came from, metadata."""
