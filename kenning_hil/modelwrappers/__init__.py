"""ModelWrapper implementations (core.model.ModelWrapper): ONNX, TFLite, PyTorch."""
