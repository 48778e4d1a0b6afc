"""File formats shared by several implementations: the TFLite flatbuffer reader, ONNX loading."""
