"""Embedders: the backends (in-process fast path, TEI, OpenAI-compatible), converting the packaged e5
weights into a model folder, and exporting a folder to ONNX / OpenVINO. Importing the package loads nothing:
core.py must stay importable where only PyTorch and transformers are installed (perf/classifier.py on a GPU)."""
